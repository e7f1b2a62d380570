package logging_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/stretchr/testify/require"
)

// sinkRequest is one POST the fake sink received.
type sinkRequest struct {
	Header http.Header
	Raw    []byte           // body after gunzip
	Lines  []map[string]any // one per NDJSON line
	Status int              // what the sink answered
}

// sinkReply is what the sink answers to the n-th request (0-based).
type sinkReply func(n int, r *sinkRequest) (status int, header http.Header)

func always(status int) sinkReply {
	return func(int, *sinkRequest) (int, http.Header) { return status, nil }
}

// sequence answers the given statuses in order, then 202 forever.
func sequence(statuses ...int) sinkReply {
	return func(n int, _ *sinkRequest) (int, http.Header) {
		if n < len(statuses) {
			return statuses[n], nil
		}
		return http.StatusAccepted, nil
	}
}

// fakeSink is a loopback Better Stack ingest endpoint: it checks the body is
// gzip'd NDJSON (406 otherwise, as the real one does), answers as scripted,
// records every request and the lines it accepted, and can be stopped and
// started again on the same address to simulate an outage.
type fakeSink struct {
	addr      string
	countOnly bool // benchmarks: count lines, keep nothing

	mu       sync.Mutex
	srv      *http.Server
	reply    sinkReply
	requests []*sinkRequest
	accepted []map[string]any
	count    int
}

func startFakeSink(t testing.TB) *fakeSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &fakeSink{addr: ln.Addr().String(), reply: always(http.StatusAccepted)}
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *fakeSink) URL() string { return "http://" + s.addr }

func (s *fakeSink) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }() // ends when Stop closes srv
}

// Stop closes the listener and every connection: clients get "connection refused".
func (s *fakeSink) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Start listens again on the same address.
func (s *fakeSink) Start(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	require.NoError(t, err)
	s.serve(ln)
}

func (s *fakeSink) Reply(r sinkReply) {
	s.mu.Lock()
	s.reply = r
	s.mu.Unlock()
}

func (s *fakeSink) handle(w http.ResponseWriter, r *http.Request) {
	if s.countOnly {
		s.countLines(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
	}
	req := &sinkRequest{Header: r.Header.Clone(), Raw: body}
	valid := true
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			valid = false
			break
		}
		req.Lines = append(req.Lines, m)
	}
	s.mu.Lock()
	n := len(s.requests)
	status, hdr := http.StatusNotAcceptable, http.Header(nil)
	if valid {
		status, hdr = s.reply(n, req)
	}
	req.Status = status
	s.requests = append(s.requests, req)
	if status == http.StatusAccepted {
		s.accepted = append(s.accepted, req.Lines...)
		s.count += len(req.Lines)
	}
	s.mu.Unlock()
	for k, v := range hdr {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

// countLines is the benchmarks' handler: it streams the body through gzip
// and counts newlines, keeping nothing, so the sink's own garbage does not
// weigh on the figures.
func (s *fakeSink) countLines(w http.ResponseWriter, r *http.Request) {
	var src io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		src = zr
	}
	buf := make([]byte, 32<<10)
	n := 0
	for {
		k, err := src.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err != nil {
			if err != io.EOF {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			break
		}
	}
	s.mu.Lock()
	s.count += n
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (s *fakeSink) Requests() []*sinkRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*sinkRequest(nil), s.requests...)
}

func (s *fakeSink) Accepted() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.accepted...)
}

func (s *fakeSink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// syncBuffer is an io.Writer safe for the shipper and the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Events returns the JSON lines whose msg is event.
func (b *syncBuffer) Events(t testing.TB, event string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "stdout line %q", line)
		if m["msg"] == event {
			out = append(out, m)
		}
	}
	return out
}

// newTestLogTail makes a LogTail aimed at sink with test-speed timings;
// mutate adjusts options. It is closed when the test ends.
func newTestLogTail(t testing.TB, sink *fakeSink, mutate func(*logging.LogTailOptions)) (*logging.LogTail, *syncBuffer) {
	t.Helper()
	stdout := &syncBuffer{}
	o := logging.LogTailOptions{
		URL: sink.URL(), Token: "tok-123",
		FlushInterval:   20 * time.Millisecond,
		MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 20 * time.Millisecond,
		DropReportInterval: time.Hour,
		Stdout:             stdout,
	}
	if mutate != nil {
		mutate(&o)
	}
	lt, err := logging.NewLogTail(o)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := lt.Close(ctx)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("closing LogTail: %v", err)
		}
	})
	return lt, stdout
}

func flush(t testing.TB, lt *logging.LogTail) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, lt.Flush(ctx))
}

// eventually polls cond until it holds, failing after a generous deadline
// (the machine may be busy; nothing here asserts speed).
func eventually(t testing.TB, cond func() bool, msg string, args ...any) {
	t.Helper()
	require.Eventually(t, cond, 15*time.Second, 2*time.Millisecond, append([]any{msg}, args...)...)
}
