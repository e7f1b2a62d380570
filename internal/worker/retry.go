package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
)

// Headers a requeued copy carries (see the package doc).
const (
	// HeaderPriorFailures counts the failures of the tasks this one was
	// copied from.
	HeaderPriorFailures = "docshield-prior-failures"
	// HeaderOrigin is the id of the first task of the chain.
	HeaderOrigin = "docshield-origin-id"
	// HeaderGeneration numbers the copies: the original is 0.
	HeaderGeneration = "docshield-generation"
)

// requeueTimeout bounds writing a copy; the task's own context may already
// be cancelled (shutdown) when the copy is needed most.
const requeueTimeout = 5 * time.Second

// ErrRetriesExhausted archives a task whose type's retry budget is spent,
// whatever larger MaxRetry its producer set.
var ErrRetriesExhausted = errors.New("retry budget spent")

// Requeued is returned for a task that was replaced by a copy (ID, on
// Queue): asynq then drops the original (it wraps asynq.RevokeTask) rather
// than archive it. Cause is why the original did not simply retry.
type Requeued struct {
	ID, Queue string
	Rerouted  bool // moved to its type's queue, not retried
	Cause     error
}

func (r *Requeued) Error() string {
	if r.Rerouted {
		return fmt.Sprintf("moved to queue %s: %v", r.Queue, r.Cause)
	}
	return fmt.Sprintf("requeued as %s: %v", r.ID, r.Cause)
}

// Unwrap lets errors.Is see asynq.RevokeTask and the cause (so a deferral
// stays a deferral).
func (r *Requeued) Unwrap() []error { return []error{asynq.RevokeTask, r.Cause} }

// priorFailures reads HeaderPriorFailures; 0 when absent or not a count.
func priorFailures(t *asynq.Task) int {
	n, err := strconv.Atoi(t.Headers()[HeaderPriorFailures])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// Try is which attempt of a task this is, against its type's budget: what
// a handler should use to know it is on its last try (asynq's own retry
// count restarts at 0 on a requeued copy).
func Try(ctx context.Context, t *asynq.Task) (n int, last bool) {
	retried, _ := asynq.GetRetryCount(ctx)
	used := priorFailures(t) + retried
	return used + 1, used >= tasks.MaxRetry(t.Type())
}

// policy applies the type's retry budget to a task's result. asynq archives
// a failed task when its retried count reaches the MaxRetry it was enqueued
// with. Past the type's budget, the task is archived here with the reason,
// however large the producer's MaxRetry; where asynq would archive a task
// that still has budget (the producer's MaxRetry is too small) or that was
// only deferred, it is requeued as a copy instead.
func (s *Server) policy(ctx context.Context, t *asynq.Task, err error) error {
	if err == nil || errors.Is(err, asynq.SkipRetry) || errors.Is(err, asynq.RevokeTask) {
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	budget := tasks.MaxRetry(t.Type())
	used := priorFailures(t) + retried // failures before this run
	if isFailure(err) {
		if used >= budget {
			return Reject(fmt.Errorf("%w (%w: %d of %d retries of %s used)", err, ErrRetriesExhausted, used, budget, t.Type()))
		}
		used++
	}
	if retried < maxRetry {
		return err // asynq retries it; a deferral spends nothing
	}
	queue, _ := asynq.GetQueueName(ctx)
	// The delay asynq would have chosen: RetryDelay adds t's prior failures.
	return s.requeue(ctx, t, requeue{queue: queue, prior: used, delay: RetryDelay(retried, err, t), cause: err})
}

// requeue describes a copy to write.
type requeue struct {
	queue    string
	rerouted bool          // same id on another queue; else a new generation
	prior    int           // failures so far, for the copy's header (rerouted: as now)
	delay    time.Duration // until the copy runs
	cause    error
}

// requeue writes a copy of t with the rest of its type's retry budget and
// returns a *Requeued, so asynq drops the original. A copy already there
// (a crash between writing it and dropping the original, then a second
// run) counts as written. If the copy cannot be written, the cause is
// returned with the write error and asynq handles the original as usual.
func (s *Server) requeue(ctx context.Context, t *asynq.Task, r requeue) error {
	id, _ := asynq.GetTaskID(ctx)
	h := t.Headers()
	origin := h[HeaderOrigin]
	if origin == "" {
		origin = id
	}
	gen, _ := strconv.Atoi(h[HeaderGeneration])
	newID := id
	if r.rerouted {
		retried, _ := asynq.GetRetryCount(ctx)
		r.prior = priorFailures(t) + retried
	} else {
		gen++
		newID = origin + "~" + strconv.Itoa(gen)
	}
	headers := map[string]string{
		HeaderPriorFailures: strconv.Itoa(r.prior),
		HeaderOrigin:        origin,
		HeaderGeneration:    strconv.Itoa(gen),
	}
	left := max(tasks.MaxRetry(t.Type())-r.prior, 0)
	copyTask := asynq.NewTaskWithHeaders(t.Type(), t.Payload(), headers,
		asynq.TaskID(newID), asynq.Queue(r.queue), asynq.MaxRetry(left), asynq.ProcessIn(r.delay))
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requeueTimeout)
	defer cancel()
	if _, err := s.client.EnqueueContext(wctx, copyTask); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("%w (and its copy could not be queued: %w)", r.cause, err)
	}
	return &Requeued{ID: newID, Queue: r.queue, Rerouted: r.rerouted, Cause: r.cause}
}
