package monitor

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docshield/voice-worker/internal/worker"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// BackpressureRetryAfter is how long a deferred task waits before asynq
// offers it again: one evaluation interval, the soonest memory can be seen
// to have fallen.
const BackpressureRetryAfter = 30 * time.Second

// Why new calls are deferred. Memory follows the evaluator's RSS grade;
// CPU and audio follow the admission duty (Admission).
const (
	PressureMemory = "memory" // RSS at or above its warning level
	PressureCPU    = "cpu"    // this process's CPU at or above its warning level
	PressureAudio  = "audio"  // live calls miss their audio deadlines
	// PressureCPUWait: with live calls, this process's threads wait for a
	// CPU as long as they run (a neighbour has it).
	PressureCPUWait = "cpu_wait"
)

// ErrBackpressure matches every task deferred by the pressure, whatever
// its reasons (errors.Is). The error returned is a *PressureError; it
// implements RetryAfter, which worker.RetryDelay honours, and Deferred,
// which tells the server's IsFailure that the task did not fail: it
// neither uses up an attempt nor counts towards the error rate. The
// worker package can test for `interface{ Deferred() bool }` without
// importing this one.
var ErrBackpressure error = &PressureError{Reasons: []string{PressureMemory}}

// PressureError is a task deferred because the worker is under pressure,
// with the reasons.
type PressureError struct{ Reasons []string }

func (e *PressureError) Error() string {
	return "worker is under " + strings.Join(e.Reasons, " and ") + " pressure: task deferred, not run"
}

// Is matches ErrBackpressure.
func (e *PressureError) Is(target error) bool { return target == ErrBackpressure }

// RetryAfter asks for the task to be offered again after one evaluation.
func (*PressureError) RetryAfter() time.Duration { return BackpressureRetryAfter }

// Deferred marks the task as put off rather than failed.
func (*PressureError) Deferred() bool { return true }

// Pressure says whether the worker should stop taking new call tasks:
// while its memory is at or above the warning threshold, its CPU is, or
// its live calls miss their audio deadlines (any of them). The evaluator
// and the admission duty set their reasons; task middleware reads it.
// Safe for concurrent use.
//
// It logs once per change of state, never per task: a backlog deferred
// every 30 s would otherwise log a line per task and retry.
// `backpressure.on` starts an episode and `backpressure.off` ends it, with
// how many deferrals there were, of how many tasks; a reason joining or
// leaving an episode already on is `backpressure.reason_on` /
// `backpressure.reason_off`. Each line names its reason (`pressure`).
type Pressure struct {
	log *zap.Logger // immutable

	on atomic.Bool // shared: any reason on; written under mu, read by every task

	mu      sync.Mutex // guards the fields below, shared by tasks and the duties
	reasons map[string]bool
	since   time.Time
	count   int                 // deferrals this episode
	tasks   map[string]struct{} // distinct task ids deferred this episode, at most maxCountedTasks
}

// maxCountedTasks bounds the set of deferred task ids one episode keeps.
const maxCountedTasks = 100_000

// NewPressure starts off: no pressure.
func NewPressure(log *zap.Logger) *Pressure {
	return &Pressure{log: log, reasons: map[string]bool{}, tasks: map[string]struct{}{}}
}

// UnderPressure reports whether new call tasks are being deferred. A nil
// Pressure never is.
func (p *Pressure) UnderPressure() bool { return p != nil && p.on.Load() }

// Reasons lists why new calls are deferred now, sorted; none when not.
func (p *Pressure) Reasons() []string {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reasonsLocked()
}

func (p *Pressure) reasonsLocked() []string {
	out := make([]string, 0, len(p.reasons))
	for r := range p.reasons {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// update turns the memory reason on or off after an evaluation of memory
// r.
func (p *Pressure) update(on bool, r MetricReading) {
	fields := []zap.Field{zap.Float64("threshold_mb", r.Warning)}
	if r.Name == MetricRSS {
		fields = append(fields, zap.Float64("rss_mb", round2(r.Value)))
	} else {
		fields = append(fields, zap.String("reason", "memory could not be read"))
	}
	p.set(PressureMemory, on, fields...)
}

// set turns one reason on or off, logging the change with fields.
func (p *Pressure) set(reason string, on bool, fields ...zap.Field) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reasons[reason] == on {
		return
	}
	was := len(p.reasons) > 0
	if on {
		p.reasons[reason] = true
	} else {
		delete(p.reasons, reason)
	}
	now := len(p.reasons) > 0
	p.on.Store(now)
	fields = append(fields, zap.String("pressure", reason))
	switch {
	case !was && now:
		p.since, p.count, p.tasks = time.Now(), 0, map[string]struct{}{}
		p.log.Warn("backpressure.on", fields...)
	case was && !now:
		fields = append(fields, zap.Int("deferrals", p.count), zap.Int("deferred_tasks", len(p.tasks)),
			zap.Duration("duration", time.Since(p.since).Round(time.Second)))
		p.count, p.tasks = 0, map[string]struct{}{}
		p.log.Info("backpressure.off", fields...)
	case on:
		p.log.Warn("backpressure.reason_on", append(fields, zap.Strings("reasons", p.reasonsLocked()))...)
	default:
		p.log.Info("backpressure.reason_off", append(fields, zap.Strings("reasons", p.reasonsLocked()))...)
	}
}

// deferred counts one deferral of the task with id and returns the error
// that defers it, naming the reasons now; nil if the pressure went off
// meanwhile.
func (p *Pressure) deferred(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reasons) == 0 {
		return nil
	}
	p.count++
	if len(p.tasks) < maxCountedTasks {
		p.tasks[id] = struct{}{}
	}
	return &PressureError{Reasons: p.reasonsLocked()}
}

// Middleware defers tasks of the given types while under pressure: it
// returns a *PressureError (ErrBackpressure) without calling the handler,
// and the task comes back after BackpressureRetryAfter without spending a
// retry (the worker's retry policy requeues it where asynq would otherwise
// archive it, as on a task whose MaxRetry is 0). Tasks already running are
// not touched and other types pass through.
func (p *Pressure) Middleware(taskTypes ...string) asynq.MiddlewareFunc {
	return worker.ForTypes(func(ctx context.Context, t *asynq.Task, next asynq.Handler) error {
		if p.UnderPressure() {
			id, _ := asynq.GetTaskID(ctx)
			if err := p.deferred(id); err != nil {
				return err
			}
		}
		return next.ProcessTask(ctx, t)
	}, taskTypes...)
}
