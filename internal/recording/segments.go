package recording

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

const (
	// putTimeout bounds one attempt to store a segment (~120 KB).
	putTimeout = 30 * time.Second
	// partialTimeout bounds one OnPartial call, which writes the call
	// document.
	partialTimeout = 10 * time.Second
	retryMin       = 200 * time.Millisecond
	retryMax       = 5 * time.Second
)

// segment is a sealed piece of the Ogg stream: whole pages, so the
// segments concatenated in order are the stream.
type segment struct {
	n      int
	data   []byte
	frames int64
}

// segmentQueue hands sealed segments from the mixer to the uploader. Its
// byte bound is the recorder's memory bound while storage is unavailable.
type segmentQueue struct {
	max  int64
	wake chan struct{} // capacity 1: "something changed"

	mu       sync.Mutex // guards the fields below
	items    []segment
	bytes    int64
	finished bool  // no more pushes
	lastErr  error // the uploader's latest failure, for reasons
}

func newSegmentQueue(max int64) *segmentQueue {
	return &segmentQueue{max: max, wake: make(chan struct{}, 1)}
}

func (q *segmentQueue) push(s segment) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bytes+int64(len(s.data)) > q.max {
		return fmt.Errorf("storage has not taken the recording's segments and %d bytes already wait in memory (Options.MaxPending is %d); last storage error: %s",
			q.bytes, q.max, errString(q.lastErr))
	}
	q.items = append(q.items, s)
	q.bytes += int64(len(s.data))
	q.signal()
	return nil
}

func (q *segmentQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// peek returns the oldest segment; finished reports that none will come.
func (q *segmentQueue) peek() (s segment, ok, finished bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return segment{}, false, q.finished
	}
	return q.items[0], true, q.finished
}

func (q *segmentQueue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes -= int64(len(q.items[0].data))
	q.items[0] = segment{}
	q.items = q.items[1:]
}

func (q *segmentQueue) finish() {
	q.mu.Lock()
	q.finished = true
	q.mu.Unlock()
	q.signal()
}

func (q *segmentQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *segmentQueue) setError(err error) {
	q.mu.Lock()
	q.lastErr = err
	q.mu.Unlock()
}

func (q *segmentQueue) lastError() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lastErr
}

// uploader stores segments in order, retrying each until it is stored or
// the recorder gives up, and reports progress through OnPartial. Its fields
// are confined to the upload goroutine until it exits; Close reads them
// after that.
type uploader struct {
	r            *Recorder
	stored       []int64 // sizes of the stored segments, in order
	storedFrames int64
	storedBytes  int64
}

func (u *uploader) run(ctx context.Context) {
	q := u.r.segs
	for {
		seg, ok, finished := q.peek()
		if !ok {
			if finished {
				return
			}
			select {
			case <-q.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		if err := u.put(ctx, seg); err != nil {
			return // ctx ended; Close reports the segments left
		}
		q.pop()
		u.stored = append(u.stored, int64(len(seg.data)))
		u.storedFrames += seg.frames
		u.storedBytes += int64(len(seg.data))
		u.report(ctx)
	}
}

func (u *uploader) put(ctx context.Context, seg segment) error {
	key := u.r.keys.Segment(seg.n)
	meta := u.r.metadata("segment " + strconv.Itoa(seg.n))
	return u.r.retry(ctx, "store segment "+key, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, putTimeout)
		defer cancel()
		return u.r.cfg.Storage.Put(ctx, key, bytes.NewReader(seg.data), ContentType, meta)
	}, u.r.segs.setError)
}

func (u *uploader) report(ctx context.Context) {
	if u.r.cfg.OnPartial == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, partialTimeout)
	defer cancel()
	if err := u.r.cfg.OnPartial(ctx, u.partial()); err != nil {
		u.r.log.Warn("recording.partial_report_failed", zap.Int("segments", len(u.stored)), zap.Error(err))
	}
}

func (u *uploader) partial() PartialInfo {
	return PartialInfo{
		Bucket:     u.r.cfg.Storage.Bucket(),
		Prefix:     u.r.keys.Partial,
		Segments:   len(u.stored),
		DurationMS: u.storedFrames * frameMS,
		Bytes:      u.storedBytes,
		FinalKey:   u.r.keys.Final,
	}
}

// retry runs op until it succeeds or ctx ends, backing off exponentially
// (with jitter, so workers that lost storage together do not return in
// lockstep). failed sees every error; the log gets the first of a streak
// and the recovery, not every attempt of a long outage.
func (r *Recorder) retry(ctx context.Context, what string, op func(context.Context) error, failed func(error)) error {
	delay := retryMin
	var last error
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			if attempt > 1 {
				r.log.Info("recording.storage_recovered", zap.String("op", what), zap.Int("attempts", attempt))
			}
			return nil
		}
		// A try cut short by the deadline says only "context canceled";
		// the reason the recording failed is what the earlier tries saw.
		if ctx.Err() != nil && last != nil {
			return last
		}
		last = err
		if failed != nil {
			failed(err)
		}
		if attempt == 1 {
			r.log.Warn("recording.storage_failed", zap.String("op", what), zap.Error(err))
		}
		wait := delay + rand.N(delay/4+1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		delay = min(2*delay, retryMax)
	}
}
