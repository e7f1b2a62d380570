package recording

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"go.uber.org/zap"
)

// readTTL is the life of the presigned URL a segment is read back through;
// it is used at once and never leaves the process.
const readTTL = 5 * time.Minute

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	t.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: t}
}

// joinFinal writes the final object: the stored segments (of the sizes
// given) read back one at a time, then tail, streamed through one
// multipart upload (so memory stays at one upload part). A live
// recording's tail never becomes a segment of its own, which saves a PUT,
// a GET and a DELETE per call and makes a short call's recording a single
// PUT.
func joinFinal(ctx context.Context, st Storage, hc *http.Client, keys Keys, sizes []int64, tail []byte, meta map[string]string) (bucket.UploadResult, error) {
	want := int64(len(tail))
	for _, n := range sizes {
		want += n
	}
	body := &joinReader{ctx: ctx, st: st, hc: hc, keys: keys, sizes: sizes, tail: tail}
	defer body.close()
	res, err := st.Upload(ctx, keys.Final, body, ContentType, meta)
	if err == nil && res.Bytes != want {
		err = fmt.Errorf("wrote %d bytes, want %d (segments %d bytes + %d in memory)", res.Bytes, want, want-int64(len(tail)), len(tail))
	}
	return res, err
}

// deleteSegments removes segments 0..n-1 within what is left of ctx and
// returns how many stay (the bucket's lifecycle rule expires them).
func deleteSegments(ctx context.Context, st Storage, keys Keys, n int, log *zap.Logger) int {
	left := 0
	for i := range n {
		key := keys.Segment(i)
		if err := st.Delete(ctx, key); err != nil {
			left++
			log.Warn("recording.segment_not_deleted", zap.String("key", key), zap.Error(err))
		}
	}
	return left
}

// joinReader reads the stored segments, then the tail, as one stream. It
// checks each segment's length, so a missing or stale object fails the
// upload instead of corrupting the recording.
type joinReader struct {
	ctx   context.Context
	st    Storage
	hc    *http.Client
	keys  Keys
	sizes []int64
	tail  []byte

	next int           // segment to open next; len(sizes) is the tail
	cur  io.ReadCloser // nil between parts
	key  string
	size int64 // of cur
	want int64 // bytes of cur still expected
}

func (j *joinReader) Read(p []byte) (int, error) {
	for {
		if j.cur == nil {
			if j.next > len(j.sizes) {
				return 0, io.EOF
			}
			if err := j.open(); err != nil {
				return 0, err
			}
		}
		n, err := j.cur.Read(p)
		j.want -= int64(n)
		if j.want < 0 {
			return n, fmt.Errorf("segment %q is longer than the %d bytes stored", j.key, j.size)
		}
		if errors.Is(err, io.EOF) {
			if j.want != 0 {
				return n, fmt.Errorf("segment %q ended %d bytes short", j.key, j.want)
			}
			j.close()
			err = nil
		}
		if n > 0 || err != nil {
			return n, scrubURL(err, j.key)
		}
	}
}

func (j *joinReader) open() error {
	i := j.next
	j.next++
	if i == len(j.sizes) {
		j.key, j.size = "memory", int64(len(j.tail))
		j.want = j.size
		j.cur = io.NopCloser(bytes.NewReader(j.tail))
		return nil
	}
	j.key, j.size = j.keys.Segment(i), j.sizes[i]
	j.want = j.size
	body, err := openObject(j.ctx, j.st, j.hc, j.key)
	if err != nil {
		return err
	}
	j.cur = body
	return nil
}

// openObject starts reading an object through a presigned URL: the
// storage client has no plain GET.
func openObject(ctx context.Context, st Storage, hc *http.Client, key string) (io.ReadCloser, error) {
	u, err := st.PresignGet(ctx, key, readTTL)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, scrubURL(err, key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, scrubURL(err, key)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("read segment %q: HTTP %d", key, resp.StatusCode)
	}
	return resp.Body, nil
}

func (j *joinReader) close() {
	if j.cur != nil {
		j.cur.Close()
		j.cur = nil
	}
}

// scrubURL drops the presigned URL from net/http's errors: it is a
// credential and must not reach logs or the call document.
func scrubURL(err error, key string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("read segment %q: %s: %w", key, ue.Op, ue.Err)
	}
	return err
}
