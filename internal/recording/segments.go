package recording

import (
	"sync"
	"time"
)

const (
	// putTimeout bounds one attempt to store a segment (~120 KB).
	putTimeout = 30 * time.Second
	// partialTimeout bounds one OnPartial call, which writes the call
	// document.
	partialTimeout = 10 * time.Second
	retryMin       = 200 * time.Millisecond
	retryMax       = 5 * time.Second
	// retryMaxLong spaces the tries once an outage has lasted a minute,
	// so a day of outage costs each held recording a try every 30 s.
	retryMaxLong = 30 * time.Second
)

// segment is a sealed piece of the Ogg stream: whole pages, so the
// segments concatenated in order are the stream. Its bytes are held by the
// spool until stored.
type segment struct {
	n      int
	data   *held
	frames int64
}

// segmentQueue hands sealed segments from the mixer to the recording's
// job. The spool's caps bound what it holds.
type segmentQueue struct {
	wake chan struct{} // capacity 1: "something changed"

	mu       sync.Mutex // guards the fields below
	items    []segment
	frames   int64 // of the items
	finished bool  // no more pushes
	refused  error // set when the job stopped: pushes are refused with it
	lastErr  error // the job's latest storage failure, for reasons
}

func newSegmentQueue() *segmentQueue {
	return &segmentQueue{wake: make(chan struct{}, 1)}
}

// push queues s, or refuses it once the job has stopped.
func (q *segmentQueue) push(s segment) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.refused != nil {
		return q.refused
	}
	q.items = append(q.items, s)
	q.frames += s.frames
	q.signal()
	return nil
}

// refuse makes later pushes fail with err and returns what is queued, for
// the caller to release.
func (q *segmentQueue) refuse(err error) []segment {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.refused = err
	items := q.items
	q.items, q.frames = nil, 0
	return items
}

// queuedFrames is the audio waiting in the queue.
func (q *segmentQueue) queuedFrames() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.frames
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
	q.frames -= q.items[0].frames
	q.items[0] = segment{}
	q.items = q.items[1:]
}

func (q *segmentQueue) finish() {
	q.mu.Lock()
	q.finished = true
	q.mu.Unlock()
	q.signal()
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
