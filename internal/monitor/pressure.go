package monitor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

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
//
// It logs once per change of state, never per task: a backlog deferred
// every 30 s would otherwise log a line per task and retry. The line that
// ends an episode says how many deferrals there were, of how many tasks.
type Pressure struct {
	log *zap.Logger // immutable

	on atomic.Bool // shared: written by the evaluator, read by every task

	mu    sync.Mutex // guards the episode's counts, shared by tasks and the evaluator
	since time.Time
	count int                 // deferrals this episode
	tasks map[string]struct{} // distinct task ids deferred this episode, at most maxCountedTasks
}

// maxCountedTasks bounds the set of deferred task ids one episode keeps.
const maxCountedTasks = 100_000

// NewPressure starts off: no pressure.
func NewPressure(log *zap.Logger) *Pressure {
	return &Pressure{log: log, tasks: map[string]struct{}{}}
}

// UnderPressure reports whether new call tasks are being deferred. A nil
// Pressure never is.
func (p *Pressure) UnderPressure() bool { return p != nil && p.on.Load() }

// update turns backpressure on or off after an evaluation of memory r, and
// says so once per change: `backpressure.off` carries the episode's
// duration and counts.
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.since, p.count, p.tasks = time.Now(), 0, map[string]struct{}{}
		p.log.Warn("backpressure.on", fields...)
		return
	}
	fields = append(fields, zap.Int("deferrals", p.count), zap.Int("deferred_tasks", len(p.tasks)),
		zap.Duration("duration", time.Since(p.since).Round(time.Second)))
	p.count, p.tasks = 0, map[string]struct{}{}
	p.log.Info("backpressure.off", fields...)
}

// deferred counts one deferral of the task with id.
func (p *Pressure) deferred(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if len(p.tasks) < maxCountedTasks {
		p.tasks[id] = struct{}{}
	}
}

// Middleware defers tasks of the given types while under pressure: it
// returns ErrBackpressure without calling the handler, and the task comes
// back after BackpressureRetryAfter without spending a retry (the worker's
// retry policy requeues it where asynq would otherwise archive it, as on a
// task whose MaxRetry is 0). Tasks already running are not touched and
// other types pass through.
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
			id, _ := asynq.GetTaskID(ctx)
			p.deferred(id)
			return ErrBackpressure
		})
	}
}
