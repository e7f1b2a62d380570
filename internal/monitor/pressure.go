package monitor

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// BackpressureRetryAfter is how long a deferred task waits before asynq
// offers it again: one evaluation interval, the soonest memory can be seen
// to have fallen.
const BackpressureRetryAfter = 30 * time.Second

// ErrBackpressure is returned, without running the task, for a task that
// arrives while the worker is short of memory. It implements RetryAfter,
// which worker.RetryDelay honours, and Deferred, which tells the server's
// IsFailure that the task did not fail: it neither uses up an attempt nor
// counts towards the error rate. The worker package can test for
// `interface{ Deferred() bool }` without importing this one.
var ErrBackpressure error = backpressureError{}

type backpressureError struct{}

func (backpressureError) Error() string {
	return "worker is under memory pressure: task deferred, not run"
}

// RetryAfter asks for the task to be offered again after one evaluation.
func (backpressureError) RetryAfter() time.Duration { return BackpressureRetryAfter }

// Deferred marks the task as put off rather than failed.
func (backpressureError) Deferred() bool { return true }

// Pressure says whether the worker should stop taking new call tasks
// because its memory is at or above the warning threshold. The evaluator
// sets it; task middleware reads it. Safe for concurrent use.
type Pressure struct {
	log *zap.Logger // immutable

	on atomic.Bool // shared: written by the evaluator, read by every task

	// retries reads a task's attempt count; a field so tests can stand in
	// for asynq's context, which only asynq can build.
	retries func(context.Context) (retried, maxRetry int, ok bool)
}

// NewPressure starts off: no pressure.
func NewPressure(log *zap.Logger) *Pressure {
	return &Pressure{log: log, retries: asynqRetries}
}

// UnderPressure reports whether new call tasks are being deferred. A nil
// Pressure never is.
func (p *Pressure) UnderPressure() bool { return p != nil && p.on.Load() }

// update turns backpressure on or off after an evaluation of memory r, and
// says so once per change.
func (p *Pressure) update(on bool, r MetricReading) {
	if p.on.Swap(on) == on {
		return
	}
	fields := []zap.Field{zap.Float64("threshold_mb", r.Warning)}
	if r.Name == MetricRSS {
		fields = append(fields, zap.Float64("rss_mb", round2(r.Value)))
	} else {
		fields = append(fields, zap.String("reason", "memory could not be read"))
	}
	if on {
		p.log.Warn("backpressure.on", fields...)
		return
	}
	p.log.Info("backpressure.off", fields...)
}

// Middleware defers tasks of the given types while under pressure: it
// returns ErrBackpressure without calling the handler, and asynq puts the
// task back for BackpressureRetryAfter. Tasks already running are not
// touched, other types pass through, and so does a task on its last
// attempt: asynq would archive it instead of retrying, and running one more
// call under memory pressure is better than losing it.
func (p *Pressure) Middleware(taskTypes ...string) asynq.MiddlewareFunc {
	gated := make(map[string]bool, len(taskTypes))
	for _, t := range taskTypes {
		gated[t] = true
	}
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			if !gated[t.Type()] || !p.UnderPressure() {
				return next.ProcessTask(ctx, t)
			}
			if retried, maxRetry, ok := p.retries(ctx); ok && retried >= maxRetry {
				logging.FromContext(ctx).Warn("backpressure.last_attempt_runs",
					zap.Int("retried", retried), zap.Int("max_retry", maxRetry))
				return next.ProcessTask(ctx, t)
			}
			return ErrBackpressure
		})
	}
}

func asynqRetries(ctx context.Context) (retried, maxRetry int, ok bool) {
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return retried, maxRetry, ok1 && ok2
}
