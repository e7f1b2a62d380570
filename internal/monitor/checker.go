package monitor

import (
	"context"
	"runtime"
	"sort"
	"time"

	"github.com/docshield/voice-worker/internal/health"
	"go.uber.org/zap"
)

// checker runs one dependency check on its schedule and logs it.
//
// Every run logs exactly one `health.check` line: info when the check
// passed, error (with consecutive_failures) when it failed, so the log
// keeps showing an outage for as long as it lasts at the same volume as a
// healthy dependency. The transitions get their own stable events, for
// LogTail alerts to match: `health.failed` (error) once when a dependency
// starts failing, `health.recovered` (info) once when it passes again.
type checker struct {
	// immutable after construction
	log     *zap.Logger
	check   health.Check
	timeout time.Duration
	now     func() time.Time

	// confined to the checker goroutine
	failures     int       // consecutive failed runs
	failingSince time.Time // when the first of them ran

	// shared, safe for concurrent use
	status *checkStatus
}

func (c *checker) run(ctx context.Context) {
	r := health.RunOne(ctx, c.timeout, c.check)
	if ctx.Err() != nil {
		// Interrupted by shutdown: says nothing about the dependency.
		return
	}
	c.status.set(r)
	fields := []zap.Field{zap.String("component", r.Name), zap.Bool("ok", r.OK), zap.Float64("latency_ms", r.LatencyMS)}
	if r.OK {
		c.log.Info("health.check", append(fields, zap.String("detail", r.Detail))...)
		if c.failures > 0 {
			c.log.Info("health.recovered", zap.String("component", r.Name),
				zap.Int("consecutive_failures", c.failures), zap.Duration("down_for", c.now().Sub(c.failingSince)))
		}
		c.failures = 0
		return
	}
	c.failures++
	if c.failures == 1 {
		c.failingSince = c.now()
	}
	fields = append(fields, zap.String("error", r.Error), zap.Int("consecutive_failures", c.failures))
	c.log.Error("health.check", fields...)
	if c.failures == 1 {
		c.log.Error("health.failed", fields...)
	}
}

// heartbeater logs that the worker process is alive, with the figures an
// operator looks at first when it is not doing well.
type heartbeater struct {
	// immutable after construction
	log          *zap.Logger
	now          func() time.Time
	rss          func() (int64, error)
	cgroupMemory func() (int64, error)
	started      time.Time
}

func (h *heartbeater) beat(context.Context) {
	fields := []zap.Field{
		zap.String("component", "worker"), zap.Bool("ok", true), zap.Float64("latency_ms", 0),
		zap.Int("goroutines", runtime.NumGoroutine()),
		zap.Int64("uptime_s", int64(h.now().Sub(h.started)/time.Second)),
	}
	if b, err := h.rss(); err == nil {
		fields = append(fields, zap.Float64("rss_mb", round2(float64(b)/bytesPerMB)))
	}
	if b, err := h.cgroupMemory(); err == nil {
		fields = append(fields, zap.Float64("cgroup_memory_mb", round2(float64(b)/bytesPerMB)))
	}
	h.log.Info("health.check", fields...)
}

func sortResults(rs []health.Result) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
}
