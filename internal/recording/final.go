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

// assemble writes the final object: the stored segments read back one at a
// time, then the tail still in memory, streamed through one multipart
// upload (so memory stays at one upload part). The tail never becomes a
// segment of its own, which saves a PUT, a GET and a DELETE per call and
// makes a short call's recording a single PUT.
func (r *Recorder) assemble(ctx context.Context, stored []int64, tail []byte) (bucket.UploadResult, error) {
	want := int64(len(tail))
	for _, n := range stored {
		want += n
	}
	var res bucket.UploadResult
	err := r.retry(ctx, "write final "+r.keys.Final, func(ctx context.Context) error {
		body := &joinReader{ctx: ctx, r: r, sizes: stored, tail: tail}
		defer body.close()
		var err error
		res, err = r.cfg.Storage.Upload(ctx, r.keys.Final, body, ContentType, r.metadata("final"))
		if err == nil && res.Bytes != want {
			err = fmt.Errorf("wrote %d bytes, want %d (segments %d bytes + %d in memory)", res.Bytes, want, want-int64(len(tail)), len(tail))
		}
		return err
	}, nil)
	return res, err
}

// deleteSegments removes the joined segments within what is left of ctx
// and returns how many stay (the bucket's lifecycle rule expires them).
func (r *Recorder) deleteSegments(ctx context.Context, n int) int {
	left := 0
	for i := range n {
		key := r.keys.Segment(i)
		if err := r.cfg.Storage.Delete(ctx, key); err != nil {
			left++
			r.log.Warn("recording.segment_not_deleted", zap.String("key", key), zap.Error(err))
		}
	}
	return left
}

// joinReader reads the stored segments, then the tail, as one stream. It
// checks each segment's length, so a missing or stale object fails the
// upload instead of corrupting the recording.
type joinReader struct {
	ctx   context.Context
	r     *Recorder
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
	j.key, j.size = j.r.keys.Segment(i), j.sizes[i]
	j.want = j.size
	u, err := j.r.cfg.Storage.PresignGet(j.ctx, j.key, readTTL)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(j.ctx, http.MethodGet, u, nil)
	if err != nil {
		return scrubURL(err, j.key)
	}
	resp, err := j.r.opts.HTTPClient.Do(req)
	if err != nil {
		return scrubURL(err, j.key)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fmt.Errorf("read segment %q: HTTP %d", j.key, resp.StatusCode)
	}
	j.cur = resp.Body
	return nil
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
