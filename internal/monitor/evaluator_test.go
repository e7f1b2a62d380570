package monitor

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

var errNoCgroup = errors.New("no cgroup memory figure")

// seq returns a func yielding vals in order, then the last one forever.
func seq[T any](vals ...T) func() T {
	i := 0
	return func() T {
		v := vals[min(i, len(vals)-1)]
		i++
		return v
	}
}

// cpuSeq: NaN stands for "no figure yet" (the meter's first sample).
func cpuSeq(pcts ...float64) func() (float64, float64, bool, error) {
	next := seq(pcts...)
	return func() (float64, float64, bool, error) {
		p := next()
		return p, 2, !math.IsNaN(p), nil
	}
}

func rssSeq(mbs ...float64) func() (int64, error) {
	next := seq(mbs...)
	return func() (int64, error) { return int64(next() * bytesPerMB), nil }
}

func steadyCPU() func() (float64, float64, bool, error) { return cpuSeq(5) }
func steadyRSS() func() (int64, error)                  { return rssSeq(100) }

func newTestEvaluator(log *zap.Logger, clock *fakeClock) *evaluator {
	th := DefaultThresholds()
	return &evaluator{
		log: log, now: clock.Now, worker: "worker.1/42", th: th,
		cpu: steadyCPU(), rss: steadyRSS(),
		cgroupMemory: func() (int64, error) { return 0, errNoCgroup },
		alerts:       NewAlerts(th.Hysteresis), errRate: NewErrorRate(DefaultErrorRateWindow),
		trouble: map[string]bool{},
	}
}

func TestEvaluatorMemoryAndCPUAlertsAndBackpressure(t *testing.T) {
	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	e.cpu = cpuSeq(math.NaN(), 50, 50, 90, 90, 60, 10)
	e.rss = rssSeq(300, 455, 470, 495, 480, 420, 400)
	e.pressure = NewPressure(log)

	var pressure []bool
	for range 7 {
		e.evaluate(context.Background())
		pressure = append(pressure, e.pressure.UnderPressure())
		require.Equal(t, pressure[len(pressure)-1], e.latest.Load().UnderPressure)
		clock.Advance(30 * time.Second)
	}

	require.Equal(t, []string{
		"alert", "backpressure.on", // 455 MB
		"alert", "alert", // CPU 90%, 495 MB
		"resolved", "resolved", "backpressure.off", // CPU 60%, 420 MB
	}, messages(logs))
	require.Equal(t, []bool{false, true, true, true, true, false, false}, pressure)

	alerts := events(logs, "alert")
	require.Equal(t, []zapcore.Level{zapcore.WarnLevel, zapcore.ErrorLevel, zapcore.ErrorLevel}, levels(logs, "alert"))
	require.Equal(t, "memory_rss", alerts[0]["metric"])
	require.Equal(t, 455.0, alerts[0]["value"])
	require.Equal(t, 450.0, alerts[0]["threshold"])
	require.Equal(t, "warning", alerts[0]["severity"])
	require.Equal(t, "cpu", alerts[1]["metric"])
	require.Equal(t, 85.0, alerts[1]["threshold"])
	require.Equal(t, "critical", alerts[1]["severity"])
	require.Equal(t, "memory_rss", alerts[2]["metric"])
	require.Equal(t, "critical", alerts[2]["severity"])
	require.Equal(t, "warning", alerts[2]["previous"])

	resolved := events(logs, "resolved")
	require.Equal(t, "cpu", resolved[0]["metric"])
	require.Equal(t, "ok", resolved[0]["level"])
	require.Equal(t, "memory_rss", resolved[1]["metric"])
	require.Equal(t, "critical", resolved[1]["severity"])
	require.Equal(t, 420.0, events(logs, "backpressure.off")[0]["rss_mb"])
}

func queueSnapshot(callsPending, processed, failed int) []queue.QueueStats {
	return []queue.QueueStats{
		{Queue: "calls", Servers: 1, Pending: callsPending, ProcessedTotal: processed, FailedTotal: failed},
		{Queue: "default", Servers: 1, Scheduled: 3, Retry: 1},
	}
}

func TestEvaluatorQueueLengthAndErrorRate(t *testing.T) {
	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	next := seq(
		queueSnapshot(10, 0, 0),
		queueSnapshot(150, 100, 2),  // calls warning; 2% errors
		queueSnapshot(250, 200, 12), // calls critical; 12/200 = 6%: warning
		queueSnapshot(90, 300, 32),  // calls back to ok; 32/300 = 10.7%: critical
		queueSnapshot(0, 300, 32),   // nothing new
	)
	e.queues = func(context.Context) ([]queue.QueueStats, error) { return next(), nil }
	for range 5 {
		e.evaluate(context.Background())
		clock.Advance(30 * time.Second)
	}
	require.Equal(t, []string{"alert", "alert", "alert", "resolved", "alert"}, messages(logs))
	alerts := events(logs, "alert")
	require.Equal(t, []string{"queue_length", "queue_length", "error_rate", "error_rate"},
		[]string{alerts[0]["metric"].(string), alerts[1]["metric"].(string), alerts[2]["metric"].(string), alerts[3]["metric"].(string)})
	require.Equal(t, "calls", alerts[0]["scope"])
	require.Equal(t, 150.0, alerts[0]["value"])
	require.Equal(t, 100.0, alerts[0]["threshold"])
	require.Equal(t, "critical", alerts[1]["severity"])
	require.Equal(t, 6.0, alerts[2]["value"])
	require.Equal(t, "warning", alerts[2]["severity"])
	require.Equal(t, 10.67, alerts[3]["value"])
	require.Equal(t, "critical", alerts[3]["severity"])
	require.Equal(t, "calls", events(logs, "resolved")[0]["scope"])

	snap := e.latest.Load()
	byKey := map[string]MetricReading{}
	for _, r := range snap.Readings {
		byKey[r.key()] = r
	}
	require.Equal(t, 4.0, byKey["queue_length/default"].Value, "scheduled + retry count as backlog")
	require.Equal(t, SeverityCritical, byKey["error_rate/"].Level)
	require.Contains(t, byKey["error_rate/"].Detail, "32 of 300 attempts failed")

	// Five quiet minutes later the failures have left the window.
	clock.Advance(5 * time.Minute)
	e.evaluate(context.Background())
	require.Equal(t, "error_rate", events(logs, "resolved")[1]["metric"])
	require.Equal(t, "critical", events(logs, "resolved")[1]["severity"])
	require.Len(t, events(logs, "alert"), 4)
}

func TestEvaluatorLogsUnreadableSourcesOnce(t *testing.T) {
	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	e.pressure = NewPressure(log)
	redisDown := errors.New("redis: connection refused")
	queueErr := seq[error](nil, redisDown, redisDown, redisDown, nil)
	e.queues = func(context.Context) ([]queue.QueueStats, error) {
		if err := queueErr(); err != nil {
			return nil, err
		}
		return queueSnapshot(0, 0, 0), nil
	}
	rssErr := seq[error](nil, nil, errors.New("no /proc"), errors.New("no /proc"), nil)
	rss := rssSeq(460)
	e.rss = func() (int64, error) {
		if err := rssErr(); err != nil {
			return 0, err
		}
		return rss()
	}
	for range 5 {
		e.evaluate(context.Background())
		clock.Advance(30 * time.Second)
	}
	// Within one evaluation: reads (cpu, rss, cgroup, queues), then
	// grading, then pressure.
	require.Equal(t, []string{
		"alert", "backpressure.on", // 460 MB
		"metrics.unavailable",                     // queues
		"metrics.unavailable", "backpressure.off", // rss: no memory figure, stop refusing calls
		"metrics.available", "metrics.available", // rss, queues
		"backpressure.on", // memory_rss is still at warning: no second alert
	}, messages(logs))
	sources := map[string]int{}
	for _, ev := range events(logs, "metrics.unavailable") {
		sources[ev["source"].(string)]++
	}
	require.Equal(t, map[string]int{"queues": 1, "rss": 1}, sources)
	require.Len(t, events(logs, "alert"), 1)
}

func TestEvaluatorPublishesSnapshots(t *testing.T) {
	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	e.cgroupMemory = func() (int64, error) { return 200 << 20, nil }
	var got []Snapshot
	fail := seq[error](nil, errors.New("redis down"), errors.New("redis down"), nil)
	e.publish = func(_ context.Context, s Snapshot) error {
		got = append(got, s)
		return fail()
	}
	for range 4 {
		e.evaluate(context.Background())
		clock.Advance(30 * time.Second)
	}
	require.Len(t, got, 4)
	s := got[0]
	require.Equal(t, "worker.1/42", s.Worker)
	require.Equal(t, newFakeClock().Now(), s.At)
	names := map[string]MetricReading{}
	for _, r := range s.Readings {
		names[r.Name] = r
	}
	require.Equal(t, 5.0, names[MetricCPU].Value)
	require.Equal(t, SeverityOK, names[MetricCPU].Level)
	require.Equal(t, 70.0, names[MetricCPU].Warning)
	require.Equal(t, 100.0, names[MetricRSS].Value)
	require.Equal(t, 200.0, names[MetricCgroupMemory].Value)
	require.Equal(t, SeverityNone, names[MetricCgroupMemory].Level, "informational")
	require.NotContains(t, names, MetricQueueLength, "no queue source, no queue rows")
	require.Equal(t, []string{"metrics.unavailable", "metrics.available"}, messages(logs))
	require.Equal(t, "publish", events(logs, "metrics.unavailable")[0]["source"])
}

func TestEvaluatorSaysNothingWhenShutDown(t *testing.T) {
	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	e.rss = rssSeq(495)
	ctx, cancel := context.WithCancel(context.Background())
	e.queues = func(ctx context.Context) ([]queue.QueueStats, error) {
		cancel() // SIGTERM arrives mid-evaluation
		return nil, ctx.Err()
	}
	e.evaluate(ctx)
	require.Empty(t, logs.All())
	require.Nil(t, e.latest.Load())
}
