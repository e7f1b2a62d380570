package monitor

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"go.uber.org/zap"
)

// DefaultErrorRateMinTasks is the fewest task attempts in the window the
// error rate is graded on: one failure in three tasks is no incident.
const DefaultErrorRateMinTasks = 20

// clusterWide says which metrics are the same whichever process reads
// them: the queues and Redis. Every worker grades them, so that a process
// that starts reporting has their history, but only the elected reporter
// logs their alerts: a fleet of a hundred dynos says each once, not a
// hundred times. CPU and memory are each process's own.
var clusterWide = map[string]bool{
	MetricQueueLength: true, MetricUnserved: true, MetricErrorRate: true, MetricRedisMemory: true,
}

// evaluator reads every metric on its schedule, grades it against the
// thresholds and logs only changes of level (`alert`, `resolved`); it also
// drives backpressure from the memory level and publishes each snapshot.
type evaluator struct {
	// immutable after construction
	log          *zap.Logger
	now          func() time.Time
	worker       string
	th           Thresholds
	cpu          func() (pct, limit float64, ok bool, err error)
	rss          func() (int64, error)
	cgroupMemory func() (int64, error)
	queues       func(context.Context) ([]queue.QueueStats, error) // nil: no queue metrics
	serving      func() []string                                   // queues this process serves; nil: none
	redis        func(context.Context) (queue.RedisInfo, error)    // nil: no Redis memory metric
	publish      func(context.Context, Snapshot) error             // nil: not published
	// reporter says whether this process logs the cluster-wide alerts
	// (the elected reporter); nil: it does (a lone process).
	reporter func() bool
	// minTasks is the fewest attempts in the window the error rate is
	// graded on; below it the rate reads ok, whatever it is.
	minTasks int64

	// confined to the evaluator goroutine
	alerts  *Alerts
	errRate *ErrorRate
	trouble map[string]bool // sources that failed last time, so a failure is logged once
	thin    bool            // this evaluation's error rate rests on fewer than minTasks attempts

	// shared: pressure is safe for concurrent use (nil: no backpressure);
	// latest is written here and read by Monitor.Latest.
	pressure *Pressure
	latest   atomic.Pointer[Snapshot]
}

// evaluate is one evaluation: read, grade, log transitions, update
// backpressure, publish.
func (e *evaluator) evaluate(ctx context.Context) {
	at := e.now()
	rs := e.read(ctx, at)
	if ctx.Err() != nil {
		return
	}
	var rss *MetricReading
	reports := e.reporter == nil || e.reporter()
	for i := range rs {
		graded := rs[i]
		if graded.Name == MetricErrorRate && e.thin {
			graded.Value = 0 // too few attempts to judge: no failures, so a standing alert resolves
		}
		r, tr := e.alerts.Observe(graded)
		r.Value = rs[i].Value
		rs[i] = r
		if tr != nil && (reports || !clusterWide[r.Name]) {
			tr.Reading.Value = r.Value
			logTransition(e.log, *tr)
		}
		if r.Name == MetricRSS {
			rss = &rs[i]
		}
	}
	if e.pressure != nil {
		// Without a memory reading there is nothing to justify refusing
		// calls, so an unreadable RSS releases the pressure.
		on := rss != nil && rss.Level >= SeverityWarning
		r := MetricReading{Warning: e.th.RSSMB.Warning}
		if rss != nil {
			r = *rss
		}
		e.pressure.update(on, r)
	}
	snap := Snapshot{Worker: e.worker, At: at, Readings: rs, UnderPressure: e.pressure.UnderPressure()}
	e.latest.Store(&snap)
	if e.publish != nil {
		e.source(ctx, "publish", e.publish(ctx, snap))
	}
}

// read takes every metric it can; one that fails is left out (and logged
// once by source) rather than graded as zero.
func (e *evaluator) read(ctx context.Context, at time.Time) []MetricReading {
	var rs []MetricReading
	pct, limit, ok, err := e.cpu()
	if e.source(ctx, "cpu", err) && ok {
		r := newReading(MetricCPU, "", pct, UnitPercent, e.th.CPUPercent)
		r.Detail = fmt.Sprintf("of %.3g CPUs", limit)
		rs = append(rs, r)
	}
	b, err := e.rss()
	if e.source(ctx, "rss", err) {
		rs = append(rs, newReading(MetricRSS, "", float64(b)/bytesPerMB, UnitMB, e.th.RSSMB))
	}
	// Outside a container there is often no cgroup memory figure; that is
	// normal, not worth a warning.
	if b, err := e.cgroupMemory(); err == nil {
		rs = append(rs, newReading(MetricCgroupMemory, "", float64(b)/bytesPerMB, UnitMB, Threshold{}))
	}
	if e.redis != nil {
		info, err := e.redis(ctx)
		if e.source(ctx, "redis_info", err) {
			rs = append(rs, redisMemoryReading(info, nil, e.th.RedisMemoryPercent))
		}
	}
	if e.queues == nil {
		return rs
	}
	stats, err := e.queues(ctx)
	if !e.source(ctx, "queues", err) {
		return rs
	}
	var serving []string
	if e.serving != nil {
		serving = e.serving()
	}
	rs = append(rs, queueReadings(stats, e.th, serving)...)
	e.errRate.Observe(at, stats)
	pctFailed, processed, failed := e.errRate.Rate(at)
	r := newReading(MetricErrorRate, "", pctFailed, UnitPercent, e.th.ErrorRatePercent)
	r.Detail = fmt.Sprintf("%d of %d attempts failed in the last %s", failed, processed, e.errRate.window)
	if e.thin = processed < e.minTasks; e.thin {
		r.Detail += fmt.Sprintf(": fewer than %d, not graded", e.minTasks)
	}
	return append(rs, r)
}

// source notes whether reading from name worked, logging a failure when it
// starts and a recovery when it ends. It reports whether err is nil.
// Failures caused by shutdown are not logged.
func (e *evaluator) source(ctx context.Context, name string, err error) bool {
	if err != nil && ctx.Err() != nil {
		return false
	}
	was := e.trouble[name]
	switch {
	case err != nil && !was:
		e.trouble[name] = true
		e.log.Warn("metrics.unavailable", zap.String("source", name), zap.Error(err))
	case err == nil && was:
		delete(e.trouble, name)
		e.log.Info("metrics.available", zap.String("source", name))
	}
	return err == nil
}
