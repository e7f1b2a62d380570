package monitor

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/health"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

// scriptedCheck returns results[i] on its i-th run (the last one after
// that): nil passes, an error fails.
func scriptedCheck(name string, results ...error) (health.Check, *atomic.Int32) {
	var runs atomic.Int32
	return health.Check{Name: name, Run: func(context.Context) (string, error) {
		i := int(runs.Add(1)) - 1
		err := results[min(i, len(results)-1)]
		if err != nil {
			return "", err
		}
		return "PONG", nil
	}}, &runs
}

func TestCheckerLogsEveryRunAndTransitionsOnce(t *testing.T) {
	down := errors.New("dial tcp 127.0.0.1:6379: connection refused")
	c, _ := scriptedCheck("redis", nil, down, down, down, nil, nil, down, nil)
	clock := newFakeClock()
	log, logs := observed()
	ch := &checker{log: log, check: c, timeout: 10 * time.Second, now: clock.Now, status: newCheckStatus()}
	for range 8 {
		ch.run(context.Background())
		clock.Advance(30 * time.Second)
	}

	require.Equal(t, []string{
		"health.check",
		"health.check", "health.failed",
		"health.check",
		"health.check",
		"health.check", "health.recovered",
		"health.check",
		"health.check", "health.failed",
		"health.check", "health.recovered",
	}, messages(logs))

	checks := events(logs, "health.check")
	require.Len(t, checks, 8)
	require.Equal(t, []zapcore.Level{
		zapcore.InfoLevel, zapcore.ErrorLevel, zapcore.ErrorLevel, zapcore.ErrorLevel,
		zapcore.InfoLevel, zapcore.InfoLevel, zapcore.ErrorLevel, zapcore.InfoLevel,
	}, levels(logs, "health.check"))
	require.Equal(t, "redis", checks[0]["component"])
	require.Equal(t, true, checks[0]["ok"])
	require.Equal(t, "PONG", checks[0]["detail"])
	require.Contains(t, checks[0], "latency_ms")
	require.Equal(t, false, checks[1]["ok"])
	require.Equal(t, down.Error(), checks[1]["error"])
	var streak []any
	for _, c := range checks {
		if c["ok"] == false {
			streak = append(streak, c["consecutive_failures"])
		}
	}
	require.Equal(t, []any{int64(1), int64(2), int64(3), int64(1)}, streak)

	require.Equal(t, []zapcore.Level{zapcore.ErrorLevel, zapcore.ErrorLevel}, levels(logs, "health.failed"))
	failed := events(logs, "health.failed")[0]
	require.Equal(t, "redis", failed["component"])
	require.Equal(t, down.Error(), failed["error"])

	recovered := events(logs, "health.recovered")
	require.Equal(t, int64(3), recovered[0]["consecutive_failures"])
	require.Equal(t, 90*time.Second, recovered[0]["down_for"])
	require.Equal(t, int64(1), recovered[1]["consecutive_failures"])

	last := ch.status.all()
	require.Len(t, last, 1)
	require.True(t, last[0].OK)
}

func TestCheckerTimeoutIsAFailure(t *testing.T) {
	clock := newFakeClock()
	hang := health.Check{Name: "s3", Run: func(ctx context.Context) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}}
	log, logs := observed()
	ch := &checker{log: log, check: hang, timeout: 20 * time.Millisecond, now: clock.Now, status: newCheckStatus()}
	ch.run(context.Background())
	failed := events(logs, "health.failed")
	require.Len(t, failed, 1)
	require.Contains(t, failed[0]["error"], "no answer within 20ms")
}

func TestCheckerSaysNothingWhenShutDownMidCheck(t *testing.T) {
	clock := newFakeClock()
	started := make(chan struct{})
	slow := health.Check{Name: "mongodb", Run: func(ctx context.Context) (string, error) {
		close(started)
		<-ctx.Done()
		return "", ctx.Err()
	}}
	log, logs := observed()
	ch := &checker{log: log, check: slow, timeout: time.Minute, now: clock.Now, status: newCheckStatus()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ch.run(ctx)
	}()
	<-started
	cancel()
	<-done
	require.Empty(t, logs.All(), "an interrupted check is neither a failure nor a pass")
	require.Empty(t, ch.status.all())
}

func TestHeartbeatFields(t *testing.T) {
	clock := newFakeClock()
	log, logs := observed()
	h := &heartbeater{
		log: log, now: clock.Now, started: clock.Now(),
		rss:          func() (int64, error) { return 300 << 20, nil },
		cgroupMemory: func() (int64, error) { return 0, errors.New("no cgroup") },
	}
	clock.Advance(90 * time.Second)
	h.beat(context.Background())
	beats := events(logs, "health.check")
	require.Len(t, beats, 1)
	b := beats[0]
	require.Equal(t, "worker", b["component"])
	require.Equal(t, true, b["ok"])
	require.Equal(t, 300.0, b["rss_mb"])
	require.Equal(t, int64(90), b["uptime_s"])
	require.Greater(t, b["goroutines"], int64(0))
	require.NotContains(t, b, "cgroup_memory_mb", "an unreadable figure is left out, not zero")
}
