package logging

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// VerifyLogTail sends one `logtail.verify` event the way the shipper sends
// batches (same headers, NDJSON, gzip) and returns the HTTP status. err is
// nil only for a 2xx; otherwise it says what the status means, or why no
// response came. An empty url means DefaultLogTailURL. For `worker verify logtail`.
func VerifyLogTail(ctx context.Context, url, token string) (status int, err error) {
	opts := LogTailOptions{URL: url, Token: token}
	if err := opts.setDefaults(); err != nil {
		return 0, err
	}
	ec := EncoderConfig()
	ec.TimeKey = "dt"
	line, err := zapcore.NewJSONEncoder(ec).EncodeEntry(
		zapcore.Entry{Level: zapcore.InfoLevel, Time: opts.Now(), Message: "logtail.verify"},
		[]zapcore.Field{zap.String("check", "worker verify logtail")})
	if err != nil {
		return 0, fmt.Errorf("logtail: encoding the test event: %w", err)
	}
	defer line.Free()
	var body bytes.Buffer
	gz := gzip.NewWriter(&body)
	if _, err := gz.Write(line.Bytes()); err != nil {
		return 0, fmt.Errorf("logtail: gzip: %w", err)
	}
	if err := gz.Close(); err != nil {
		return 0, fmt.Errorf("logtail: gzip: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := newIngestRequest(ctx, opts.URL, opts.Token, body.Bytes(), true)
	if err != nil {
		return 0, err
	}
	resp, err := opts.HTTPClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("logtail: POST %s: %w", RedactURL(opts.URL), unwrapURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("logtail: POST %s: %d %s", RedactURL(opts.URL), resp.StatusCode, StatusMeaning(resp.StatusCode))
	}
	return resp.StatusCode, nil
}
