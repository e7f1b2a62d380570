package logging

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// maxRetryAfter caps a server's Retry-After: past it we would rather retry
// and risk another 429 than hold the buffer for longer.
const maxRetryAfter = 5 * time.Minute

// shipper is the one goroutine that moves batches from the LogTail's buffer
// to the ingest endpoint, retrying, splitting and dropping as the status
// codes say, and reporting drops.
//
// Immutable after newShipper: lt, opts, notices, ctx, cancel.
// Confined to the shipper goroutine: body, gz, reported, lastReport, failing,
// quota.
// Shared: the buffer, through lt.mu; counters, through atomics; the
// goroutine's lifetime, through ctx and wg (start/shutdown).
type shipper struct {
	lt      *LogTail
	opts    *LogTailOptions
	notices *zap.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	body bytes.Buffer
	gz   *gzip.Writer

	reportMu   sync.Mutex // reportDrops also runs once from Close, after the goroutine ends
	reported   [numLevels]uint64
	lastReport time.Time

	failing bool // in an outage: a notice was printed, recovery gets one too
	quota   bool // in a 402 episode
}

func newShipper(lt *LogTail) *shipper {
	ctx, cancel := context.WithCancel(context.Background())
	return &shipper{
		lt: lt, opts: &lt.opts, notices: noticeLogger(lt.opts.Stdout),
		ctx: ctx, cancel: cancel, lastReport: lt.opts.Now(),
	}
}

func (s *shipper) start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run()
	}()
}

// shutdown stops the goroutine, aborting a request in flight, and waits for it.
func (s *shipper) shutdown() {
	s.cancel()
	s.wg.Wait()
}

func (s *shipper) run() {
	flush := time.NewTicker(s.opts.FlushInterval)
	defer flush.Stop()
	report := time.NewTicker(s.opts.DropReportInterval)
	defer report.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-flush.C:
			s.shipReady(true, report)
		case <-s.lt.wake:
			s.shipReady(false, report)
		case <-report.C:
			s.reportDrops()
		}
	}
}

// shipReady sends batches until the buffer holds less than a batch (or, when
// forced, nothing).
func (s *shipper) shipReady(force bool, report *time.Ticker) {
	for s.ctx.Err() == nil {
		b := s.lt.takeBatch(force)
		if b == nil {
			return
		}
		s.deliver(b, report)
		s.lt.batchDone()
	}
}

// outcome is what a response means for the batch that was sent.
type outcome int

const (
	outcomeSent      outcome = iota
	outcomeRetry             // network error, 408, 429, 5xx: the same batch later
	outcomeQuota             // 402: the same batch, at the longest backoff
	outcomeTooLarge          // 413: split
	outcomeMalformed         // 406: drop
	outcomeRejected          // 401, 403: the token is wrong; stop
	outcomeRefused           // any other status: retrying the same bytes cannot help; drop
)

func classify(status int) outcome {
	switch {
	case status >= 200 && status < 300:
		return outcomeSent
	case status == http.StatusPaymentRequired:
		return outcomeQuota
	case status == http.StatusRequestEntityTooLarge:
		return outcomeTooLarge
	case status == http.StatusNotAcceptable:
		return outcomeMalformed
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return outcomeRejected
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return outcomeRetry
	default:
		return outcomeRefused
	}
}

// StatusMeaning explains an ingest response status for operators.
func StatusMeaning(status int) string {
	switch {
	case status == http.StatusAccepted:
		return "accepted"
	case status == http.StatusPaymentRequired:
		return "LogTail quota or spending limit reached"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "source token rejected: check LOGTAIL_SOURCE_TOKEN"
	case status == http.StatusNotAcceptable:
		return "body is not valid JSON"
	case status == http.StatusRequestEntityTooLarge:
		return "request body too large"
	case status == http.StatusTooManyRequests:
		return "rate limited"
	case status == http.StatusNotFound:
		return "no ingest endpoint at this URL: check LOGTAIL_INGEST_URL"
	case status >= 500:
		return "LogTail server error"
	default:
		return http.StatusText(status)
	}
}

// deliver sends one batch until every line in it is shipped or dropped, or
// the shipper shuts down (then the rest count as abandoned).
func (s *shipper) deliver(batch []qline, report *time.Ticker) {
	pending := [][]qline{batch}
	attempt := 0
	for len(pending) > 0 {
		b := pending[0]
		status, retryAfter, err := s.post(b)
		var o outcome
		if err != nil {
			if s.ctx.Err() != nil {
				break
			}
			o = outcomeRetry
		} else {
			o = classify(status)
		}
		switch o {
		case outcomeSent:
			s.lt.shipped.Add(uint64(len(b)))
			s.lt.batches.Add(1)
			pending, attempt = pending[1:], 0
			s.recovered()
			continue
		case outcomeTooLarge:
			if len(b) == 1 {
				s.lt.dropLines(b, causeTooLarge)
				pending = pending[1:]
				continue
			}
			h := len(b) / 2
			pending = append([][]qline{b[:h], b[h:]}, pending[1:]...)
			continue
		case outcomeMalformed:
			s.lt.dropLines(b, causeMalformed)
			s.notices.Error("logtail.malformed", zap.Int("status", status), zap.Int("lines", len(b)),
				zap.String("meaning", StatusMeaning(status)))
			pending = pending[1:]
			continue
		case outcomeRefused:
			s.lt.dropLines(b, causeRejected)
			s.notices.Error("logtail.refused", zap.Int("status", status), zap.Int("lines", len(b)),
				zap.String("meaning", StatusMeaning(status)))
			pending = pending[1:]
			continue
		case outcomeRejected:
			for _, p := range pending {
				s.lt.dropLines(p, causeRejected)
			}
			s.lt.stop()
			s.notices.Error("logtail.rejected", zap.Int("status", status),
				zap.String("meaning", StatusMeaning(status)),
				zap.String("action", "shipping to LogTail stopped until restart; logs go to stdout only"))
			return
		}
		// Transient: the same batch again after a backoff.
		attempt++
		s.lt.retries.Add(1)
		d := retryDelay(attempt, retryAfter, s.opts.MinRetryBackoff, s.opts.MaxRetryBackoff, o == outcomeQuota)
		s.failed(status, err, d)
		if o == outcomeQuota && !s.quota {
			s.quota = true
			s.notices.Error("logtail.quota", zap.Int("status", status), zap.String("meaning", StatusMeaning(status)),
				zap.String("action", "retrying at the longest backoff; the buffer drops oldest low-level lines meanwhile"))
		}
		if !s.wait(d, report) {
			break
		}
	}
	for _, p := range pending {
		s.lt.dropLines(p, causeShutdown)
	}
}

// failed prints one notice when an outage starts, not one per attempt.
func (s *shipper) failed(status int, err error, next time.Duration) {
	if s.failing {
		return
	}
	s.failing = true
	fs := []zap.Field{zap.Int64("retry_in_ms", next.Milliseconds())}
	if err != nil {
		fs = append(fs, zap.Error(err))
	} else {
		fs = append(fs, zap.Int("status", status), zap.String("meaning", StatusMeaning(status)))
	}
	s.notices.Warn("logtail.retrying", fs...)
}

func (s *shipper) recovered() {
	if s.failing || s.quota {
		s.notices.Info("logtail.recovered", zap.Uint64("retries_total", s.lt.retries.Load()))
	}
	s.failing, s.quota = false, false
}

// wait sleeps d, still reporting drops. It returns false when shutting
// down. A Flush that starts during the wait cuts it short once, so shutdown
// gets a prompt last attempt.
func (s *shipper) wait(d time.Duration, report *time.Ticker) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	epoch := s.lt.flushCalls.Load()
	for {
		select {
		case <-t.C:
			return true
		case <-s.ctx.Done():
			return false
		case <-report.C:
			s.reportDrops()
		case <-s.lt.wake:
			if s.lt.flushCalls.Load() != epoch {
				return true
			}
		}
	}
}

// retryDelay is the wait before attempt+1: exponential from min, capped at
// max, with jitter so many dynos do not retry in step; never shorter than a
// server's Retry-After (itself capped). A 402 waits the longest: a quota is
// not lifted in seconds.
func retryDelay(attempt int, retryAfter, minD, maxD time.Duration, quota bool) time.Duration {
	d := maxD
	if !quota {
		d = minD
		for i := 1; i < attempt && d < maxD; i++ {
			d *= 2
		}
		d = min(d, maxD)
	}
	d = d/2 + rand.N(d/2+1)
	if ra := min(retryAfter, maxRetryAfter); ra > d {
		d = ra
	}
	return d
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// post sends one batch and reports the status and any Retry-After.
func (s *shipper) post(b []qline) (status int, retryAfter time.Duration, err error) {
	s.body.Reset()
	var w io.Writer = &s.body
	if !s.opts.DisableGzip {
		if s.gz == nil {
			s.gz, _ = gzip.NewWriterLevel(&s.body, gzip.BestSpeed) // BestSpeed is a valid level
		} else {
			s.gz.Reset(&s.body)
		}
		w = s.gz
	}
	for _, l := range b {
		if _, err := w.Write(l.b); err != nil {
			return 0, 0, fmt.Errorf("logtail: building body: %w", err)
		}
	}
	if s.gz != nil && !s.opts.DisableGzip {
		if err := s.gz.Close(); err != nil {
			return 0, 0, fmt.Errorf("logtail: gzip: %w", err)
		}
	}
	req, err := newIngestRequest(s.ctx, s.opts.URL, s.opts.Token, s.body.Bytes(), !s.opts.DisableGzip)
	if err != nil {
		return 0, 0, err
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("logtail: POST %s: %w", RedactURL(s.opts.URL), unwrapURLError(err))
	}
	// Drain so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), s.opts.Now()), nil
}

// unwrapURLError drops *url.Error's "Post <url>:" prefix; callers name the
// URL themselves, redacted.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func newIngestRequest(ctx context.Context, u, token string, body []byte, gzipped bool) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("logtail: URL (LOGTAIL_INGEST_URL) %q: %w", RedactURL(u), err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("User-Agent", "docshield-voice-worker")
	return req, nil
}

// reportDrops writes one `logtail.dropped` line when lines were dropped since
// the previous report. It goes to Stdout only: a report routed through the
// LogTail core could itself be dropped, and report again, forever.
func (s *shipper) reportDrops() {
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	now := s.opts.Now()
	var since [numLevels]uint64
	var total uint64
	for i := range since {
		cur := s.lt.dropped[i].Load()
		since[i] = cur - s.reported[i]
		total += since[i]
		s.reported[i] = cur
	}
	if total == 0 {
		s.lastReport = now
		return
	}
	fs := []zap.Field{zap.Uint64("dropped", total), zap.Int64("period_ms", now.Sub(s.lastReport).Milliseconds())}
	for i, n := range since {
		if n > 0 {
			fs = append(fs, zap.Uint64("dropped_"+(zapcore.DebugLevel+zapcore.Level(i)).String(), n))
		}
	}
	st := s.lt.Stats()
	fs = append(fs, zap.Uint64("dropped_total", st.DroppedTotal), zap.Int64("buffered_bytes", st.BufferedBytes))
	s.notices.Warn("logtail.dropped", fs...)
	s.lastReport = now
}
