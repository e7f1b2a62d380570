package monitor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest/observer"
)

// countOf counts entries named msg whose field key equals value ("" key:
// all entries named msg).
func countOf(logs *observer.ObservedLogs, msg, key string, value any) int {
	n := 0
	for _, e := range events(logs, msg) {
		if key == "" || e[key] == value {
			n++
		}
	}
	return n
}

// waitFor polls until cond holds, within a bound that only a stuck duty
// exceeds. It is used once per duty, for the run after its last tick: a
// later tick would prove that run finished, but there is none.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 2*time.Millisecond, what)
}

func TestMonitorRunsEveryDutyOnItsSchedule(t *testing.T) {
	clock := newFakeClock()
	log, logs := observed()
	tickers := newManualTickers()
	proc := procFS(t, map[string]string{
		"proc/self/stat":   statLine(100, 50),
		"proc/self/status": "VmRSS:\t471040 kB\n", // 460 MB: memory warning
	}, 2)
	redisDown := errors.New("connection refused")
	redis, redisRuns := scriptedCheck("redis", nil, redisDown, nil)
	mongo, _ := scriptedCheck("mongodb", nil)
	backlog := seq(150, 150, 10)
	pressure := NewPressure(log)

	m, err := NewMonitor(MonitorOptions{
		Logger: log, Worker: "worker.1/7",
		Checks: []ScheduledCheck{
			{Check: redis, Interval: DefaultRedisInterval},
			{Check: mongo, Interval: DefaultMongoInterval},
		},
		Proc: &proc,
		Queues: func(context.Context) ([]queue.QueueStats, error) {
			return []queue.QueueStats{{Queue: "calls", Servers: 1, Pending: backlog()}}, nil
		},
		Pressure:  pressure,
		NewTicker: tickers.New,
		Now:       clock.Now,
	})
	require.NoError(t, err)
	m.Start()
	require.Equal(t, 30*time.Second, tickers.get(t, "check:redis").interval)
	require.Equal(t, 60*time.Second, tickers.get(t, "check:mongodb").interval)
	require.Equal(t, 30*time.Second, tickers.get(t, "heartbeat").interval)
	require.Equal(t, 30*time.Second, tickers.get(t, "evaluate").interval)

	// Each duty ran once at start; two more redis checks and evaluations,
	// one more heartbeat. A second tick to the same duty is only taken
	// once the previous run is over.
	tickers.tick(t, "check:redis")
	tickers.tick(t, "check:redis")
	tickers.tick(t, "evaluate")
	tickers.tick(t, "evaluate")
	tickers.tick(t, "heartbeat")
	waitFor(t, "third redis check logged", func() bool { return countOf(logs, "health.check", "component", "redis") == 3 })
	waitFor(t, "third evaluation resolved the queue alert", func() bool { return countOf(logs, "resolved", "", nil) == 1 })
	waitFor(t, "second heartbeat", func() bool { return countOf(logs, "health.check", "component", "worker") == 2 })
	// The mongodb duty was never ticked: its run at start may not have
	// been scheduled yet, and Shutdown would interrupt it unlogged.
	waitFor(t, "first mongodb check", func() bool { return countOf(logs, "health.check", "component", "mongodb") == 1 })
	m.Shutdown()

	require.Equal(t, int32(3), redisRuns.Load())
	require.Equal(t, 1, countOf(logs, "health.failed", "component", "redis"))
	require.Equal(t, 1, countOf(logs, "health.recovered", "component", "redis"))
	require.Equal(t, 1, countOf(logs, "health.check", "component", "mongodb"))
	require.Equal(t, 0, countOf(logs, "health.failed", "component", "mongodb"))

	require.Equal(t, 1, countOf(logs, "alert", "metric", "queue_length"))
	require.Equal(t, 1, countOf(logs, "alert", "metric", "memory_rss"))
	require.Equal(t, 1, countOf(logs, "resolved", "metric", "queue_length"))
	require.Equal(t, 2, countOf(logs, "alert", "", nil), "no repeats while a level holds")
	require.Equal(t, 1, countOf(logs, "backpressure.on", "", nil))
	require.True(t, pressure.UnderPressure())

	snap := m.Latest()
	require.Equal(t, "worker.1/7", snap.Worker)
	require.True(t, snap.UnderPressure)
	results := m.CheckResults()
	require.Len(t, results, 2)
	require.Equal(t, "mongodb", results[0].Name)
	require.True(t, results[1].OK, "redis recovered")

	for _, duty := range []string{"check:redis", "check:mongodb", "heartbeat", "evaluate"} {
		require.True(t, tickers.get(t, duty).isStopped(), duty)
	}
}

func TestMonitorShutdownStopsEveryDuty(t *testing.T) {
	log, logs := observed()
	tickers := newManualTickers()
	proc := procFS(t, map[string]string{"proc/self/status": "VmRSS:\t1024 kB\n"}, 1)
	m, err := NewMonitor(MonitorOptions{Logger: log, Proc: &proc, NewTicker: tickers.New, Now: newFakeClock().Now})
	require.NoError(t, err)
	m.Start()
	waitFor(t, "first heartbeat", func() bool { return countOf(logs, "health.check", "component", "worker") == 1 })
	m.Shutdown() // returns only once every duty's goroutine has ended
	require.True(t, tickers.get(t, "heartbeat").isStopped())
	require.True(t, tickers.get(t, "evaluate").isStopped())
}

func TestNewMonitorRejectsBadOptions(t *testing.T) {
	log, _ := observed()
	_, err := NewMonitor(MonitorOptions{})
	require.ErrorContains(t, err, "Logger")

	th := DefaultThresholds()
	th.RSSMB = Threshold{Warning: 500, Critical: 490}
	_, err = NewMonitor(MonitorOptions{Logger: log, Thresholds: th})
	require.ErrorContains(t, err, "memory threshold")

	_, err = NewMonitor(MonitorOptions{Logger: log, Checks: []ScheduledCheck{{Check: health.Check{Name: "redis", Run: func(context.Context) (string, error) { return "", nil }}}}})
	require.ErrorContains(t, err, `check "redis"`)
}

func TestMonitorCapsCheckTimeoutAtInterval(t *testing.T) {
	log, _ := observed()
	tickers := newManualTickers()
	fast := health.Check{Name: "redis", Run: func(context.Context) (string, error) { return "", nil }}
	m, err := NewMonitor(MonitorOptions{
		Logger: log, CheckTimeout: time.Minute, NewTicker: tickers.New,
		Checks: []ScheduledCheck{{Check: fast, Interval: 5 * time.Second}},
	})
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, m.checkers[0].timeout, "a check never outlives its interval")
}
