package recording

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"go.uber.org/zap"
)

// ErrGaveUp means storage refused a recording for SpoolConfig.GiveUpAfter.
var ErrGaveUp = errors.New("recording: storage refused for too long")

// job is one recording's way to storage. The recorder's mixer queues its
// sealed segments; the job's goroutine, owned by the spool, stores them in
// order while the call runs and, once the recorder has finished, joins them
// with the tail into the final object. If Close stops waiting first, the
// job is detached: it goes on after the call's task has ended and records
// the outcome on the call itself.
type job struct {
	// Immutable after newJob.
	s        *Spool
	cfg      Config
	keys     Keys
	log      *zap.Logger
	segs     *segmentQueue
	finished chan struct{} // closed by finish
	done     chan struct{} // closed once result is set

	// Written by finish, under mu, before finished is closed; read by the
	// job goroutine after (and tail released under mu).
	tail         *held
	tailFrames   int64
	durationMS   int64 // the whole recording: encoded, plus what the mixer could not keep
	mixerStopped string

	// Confined to the job goroutine.
	stored       []int64 // sizes of the stored segments, in order
	storedFrames int64
	storedBytes  int64
	failingSince time.Time // start of the current streak of storage failures

	// Shared: guarded by mu.
	mu       sync.Mutex
	progress PartialInfo // the stored segments, as OnPartial last saw them
	isDone   bool        // finish was called
	total    int64       // durationMS, once finish was called
	detached bool
	since    time.Time // when Close stopped waiting
	result   *Result
}

func newJob(s *Spool, cfg Config, keys Keys, log *zap.Logger) *job {
	return &job{
		s: s, cfg: cfg, keys: keys, log: log,
		segs:     newSegmentQueue(),
		finished: make(chan struct{}),
		done:     make(chan struct{}),
		progress: PartialInfo{Bucket: s.cfg.Storage.Bucket(), Prefix: keys.Partial, FinalKey: keys.Final},
	}
}

// finish hands the job the end of the recording; called once, by Close.
// A job that has already ended (the spool stopped) lets go of the tail.
func (j *job) finish(tail *held, tailFrames, durationMS int64, mixerStopped string) {
	j.mu.Lock()
	if j.result != nil {
		j.s.buf.release(tail)
		tail = nil
	}
	j.tail, j.tailFrames, j.durationMS, j.mixerStopped = tail, tailFrames, durationMS, mixerStopped
	j.isDone, j.total = true, durationMS
	j.mu.Unlock()
	close(j.finished)
	j.segs.finish()
}

// wait waits up to limit for the outcome. If it does not come, the job is
// detached and the Result says the recording is pending upload.
func (j *job) wait(limit time.Duration) Result {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-j.done:
	case <-t.C:
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.result != nil {
		return *j.result
	}
	j.detached, j.since = true, j.s.cfg.Now()
	n := j.noteLocked(j.since)
	j.log.Warn("recording.pending_upload", zap.Int64("duration_ms", n.DurationMS),
		zap.Int("segments_stored", j.progress.Segments), zap.String("reason", n.Reason))
	return Result{State: PendingUpload, Partial: n.Partial, DurationMS: n.DurationMS, Reason: n.Reason, Pending: &n,
		Stats: Stats{Segments: j.progress.Segments}}
}

// pendingNote is the note to renew, while the job is detached.
func (j *job) pendingNote(now time.Time) (PendingNote, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.detached || j.result != nil {
		return PendingNote{}, false
	}
	return j.noteLocked(now), true
}

func (j *job) noteLocked(now time.Time) PendingNote {
	n := PendingNote{
		Owner: j.s.cfg.Owner, LeaseUntil: now.Add(j.s.cfg.Lease), Since: j.since, DurationMS: j.total,
		Reason: fmt.Sprintf("storage has not taken %v of the recording yet (last error: %s); worker %s keeps trying",
			time.Duration(j.total-j.progress.DurationMS)*time.Millisecond, errString(j.segs.lastError()), j.s.cfg.Owner),
	}
	if j.progress.Segments > 0 {
		p := j.progress
		n.Partial = &p
	}
	return n
}

// unstoredMS is the audio not in storage; for the shutdown report.
func (j *job) unstoredMS() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.isDone {
		return j.segs.queuedFrames() * frameMS
	}
	return j.total - j.progress.DurationMS
}

func (j *job) run(ctx context.Context) {
	res := j.work(ctx)
	for _, seg := range j.segs.refuse(errors.New("the recording's storage job has ended")) {
		j.s.buf.release(seg.data)
	}
	j.mu.Lock()
	if j.isDone {
		j.s.buf.release(j.tail)
	}
	j.result = &res
	detached := j.detached
	j.mu.Unlock()
	j.s.remove(j) // nothing is held any more
	close(j.done)
	if detached {
		j.settle(res)
	}
}

// work stores the segments as they come, then the final object.
func (j *job) work(ctx context.Context) Result {
	for {
		seg, ok, finished := j.segs.peek()
		if !ok {
			if finished {
				break
			}
			select {
			case <-j.segs.wake:
			case <-ctx.Done():
				return j.unfinished(ctx.Err())
			}
			continue
		}
		if err := j.put(ctx, seg); err != nil {
			return j.unfinished(err)
		}
		size := seg.data.size
		j.segs.pop()
		j.s.buf.release(seg.data)
		j.stored = append(j.stored, size)
		j.storedFrames += seg.frames
		j.storedBytes += size
		j.mu.Lock()
		j.progress.Segments, j.progress.DurationMS, j.progress.Bytes = len(j.stored), j.storedFrames*frameMS, j.storedBytes
		j.mu.Unlock()
		j.report(ctx)
	}
	<-j.finished // segs.finish follows finish
	storedMS := j.storedFrames * frameMS
	if len(j.stored) == 0 && j.tail == nil {
		if j.durationMS == 0 {
			return Result{State: None, Reason: "no audio reached the recorder"}
		}
		return Result{State: Partial, DurationMS: j.durationMS, LostMS: j.durationMS, Reason: j.mixerStopped}
	}
	var tail []byte
	if j.tail != nil {
		var err error
		if tail, err = j.s.buf.read(j.tail); err != nil {
			return j.unfinished(err)
		}
	}
	final, err := j.assemble(ctx, tail)
	if err != nil {
		return j.unfinished(fmt.Errorf("the final object %q could not be written: %w", j.keys.Final, err))
	}
	res := Result{
		State: Complete,
		Stored: &Stored{Bucket: j.s.cfg.Storage.Bucket(), Key: final.Key, Bytes: final.Bytes,
			DurationMS: storedMS + j.tailFrames*frameMS, Format: Format, SHA256: final.SHA256},
		DurationMS: j.durationMS,
	}
	res.Stats.Segments = len(j.stored)
	res.Stats.LeftoverSegments = deleteSegments(ctx, j.s.cfg.Storage, j.keys, len(j.stored), j.log)
	if lost := j.durationMS - res.Stored.DurationMS; j.mixerStopped != "" || lost > 0 {
		// The final object holds the audio up to where recording stopped.
		res.State, res.LostMS, res.Reason = Partial, max(lost, 0), j.mixerStopped
	}
	j.log.Info("recording.stored", zap.String("key", final.Key), zap.Int64("bytes", final.Bytes),
		zap.Int64("duration_ms", res.Stored.DurationMS), zap.Int("segments", len(j.stored)),
		zap.Int("leftover_segments", res.Stats.LeftoverSegments), zap.String("state", string(res.State)))
	return res
}

// unfinished is the outcome when storage could not be reached in time:
// the stored segments stay, for a later join, and the rest is lost.
func (j *job) unfinished(cause error) Result {
	res := Result{State: Partial}
	res.Stats.Segments = len(j.stored)
	if len(j.stored) > 0 {
		j.mu.Lock()
		p := j.progress
		j.mu.Unlock()
		res.Partial = &p
	}
	storedMS := j.storedFrames * frameMS
	why := "storage did not take it"
	switch {
	case errors.Is(cause, ErrGaveUp):
		why = "storage refused it for " + j.s.cfg.GiveUpAfter.String()
	case errors.Is(cause, context.Canceled):
		why = "the worker stopped before storage came back"
		cause = j.segs.lastError()
	}
	select {
	case <-j.finished:
		res.DurationMS = j.durationMS
		res.LostMS = j.durationMS - storedMS
		res.Reason = fmt.Sprintf("%v of the recording was lost (%s): %s", time.Duration(res.LostMS)*time.Millisecond, why, errString(cause))
	default:
		res.Reason = fmt.Sprintf("the recording after %v was lost (%s): %s", time.Duration(storedMS)*time.Millisecond, why, errString(cause))
	}
	j.log.Warn("recording.failed", zap.String("reason", res.Reason), zap.Int("segments_stored", len(j.stored)))
	return res
}

func (j *job) put(ctx context.Context, seg segment) error {
	key := j.keys.Segment(seg.n)
	meta := metadata(j.cfg, "segment "+strconv.Itoa(seg.n))
	return j.retry(ctx, "store segment "+key, func(ctx context.Context) error {
		data, err := j.s.buf.read(seg.data)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, putTimeout)
		defer cancel()
		return j.s.cfg.Storage.Put(ctx, key, bytes.NewReader(data), ContentType, meta)
	})
}

func (j *job) report(ctx context.Context) {
	if j.cfg.OnPartial == nil {
		return
	}
	j.mu.Lock()
	p, live := j.progress, !j.detached
	j.mu.Unlock()
	if !live {
		return // the call has ended: the pending note carries the progress
	}
	ctx, cancel := context.WithTimeout(ctx, partialTimeout)
	defer cancel()
	if err := j.cfg.OnPartial(ctx, p); err != nil {
		j.log.Warn("recording.partial_report_failed", zap.Int("segments", p.Segments), zap.Error(err))
	}
}

// assemble writes the final object from the stored segments and the tail.
func (j *job) assemble(ctx context.Context, tail []byte) (res bucket.UploadResult, err error) {
	err = j.retry(ctx, "write final "+j.keys.Final, func(ctx context.Context) error {
		var err error
		res, err = joinFinal(ctx, j.s.cfg.Storage, j.s.cfg.HTTPClient, j.keys, j.stored, tail, metadata(j.cfg, "final"))
		return err
	})
	return res, err
}

// settle records the outcome of a detached recording on its call, trying
// until the call has ended and the write succeeds, or the spool's budget
// is spent.
func (j *job) settle(res Result) {
	if j.s.cfg.Ledger == nil {
		j.log.Warn("recording.settled_unrecorded", zap.String("state", string(res.State)), zap.String("reason", res.Reason))
		return
	}
	ctx := j.s.life
	delay := retryMin
	for attempt := 1; ; attempt++ {
		err := j.s.cfg.Ledger.Settle(ctx, j.cfg.AttemptID, res)
		if err == nil {
			j.log.Info("recording.settled", zap.String("state", string(res.State)), zap.Int64("lost_ms", res.LostMS))
			return
		}
		if ctx.Err() != nil || j.s.cfg.Now().Sub(j.since) > j.s.cfg.GiveUpAfter {
			j.log.Error("recording.settle_failed", zap.String("state", string(res.State)), zap.String("reason", res.Reason), zap.Error(err))
			return
		}
		if attempt == 1 && !errors.Is(err, ErrNotEnded) {
			j.log.Warn("recording.settle_retrying", zap.Error(err))
		}
		if !sleep(ctx, delay) {
			continue // the last try above reports
		}
		delay = min(2*delay, retryMax)
	}
}

// retry runs op until it succeeds, ctx ends or storage has refused for
// GiveUpAfter, backing off exponentially (with jitter, so workers that lost
// storage together do not return in lockstep; longer once the outage has
// lasted a minute). The log gets the first failure of a streak and the
// recovery, not every attempt of a long outage.
func (j *job) retry(ctx context.Context, what string, op func(context.Context) error) error {
	delay := retryMin
	var last error
	for attempt := 1; ; attempt++ {
		err := j.s.acquire(ctx)
		if err == nil {
			err = op(ctx)
			j.s.releaseSlot()
		}
		if err == nil {
			j.failingSince = time.Time{}
			if attempt > 1 {
				j.log.Info("recording.storage_recovered", zap.String("op", what), zap.Int("attempts", attempt))
			}
			return nil
		}
		// A try cut short by ctx says only "context canceled"; the reason
		// is what the earlier tries saw.
		if ctx.Err() != nil {
			if last != nil {
				return fmt.Errorf("%w: %w", ctx.Err(), last)
			}
			return err
		}
		last = err
		j.segs.setError(err)
		now := j.s.cfg.Now()
		if j.failingSince.IsZero() {
			j.failingSince = now
		}
		if now.Sub(j.failingSince) >= j.s.cfg.GiveUpAfter {
			return fmt.Errorf("%w (%s): %w", ErrGaveUp, what, err)
		}
		if attempt == 1 {
			j.log.Warn("recording.storage_failed", zap.String("op", what), zap.Error(err))
		}
		if !sleep(ctx, delay) {
			continue // the next try sees ctx ended
		}
		limit := retryMax
		if now.Sub(j.failingSince) > time.Minute {
			limit = retryMaxLong
		}
		delay = min(2*delay, limit)
	}
}

// sleep waits d plus up to a quarter of jitter; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d + rand.N(d/4+1))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
