package monitor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/elect"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// member is one worker process of the test fleet: its elector and its
// monitor, logging to its own record.
type member struct {
	el   *elect.Elector
	mon  *monitor.Monitor
	logs *observer.ObservedLogs
}

func (m *member) stop() {
	m.mon.Shutdown()
	m.el.Shutdown()
}

// Three workers watch one Redis whose calls queue backs up: the queue
// alert is logged once, by the elected reporter, not once per worker.
// When the reporter stops, another takes over and reports what changes
// next (the queue going critical, then clearing), again once.
func TestClusterWideAlertsOnceAcrossTheFleet(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	enqueue := func(n int) {
		for range n {
			_, err := client.Enqueue(asynq.NewTask(tasks.TypeCallOutbound, []byte(`{"attempt_id":"x"}`)), asynq.Queue(tasks.QueueCalls))
			require.NoError(t, err)
		}
	}
	th := monitor.DefaultThresholds()
	th.QueueLength = monitor.Threshold{Warning: 3, Critical: 6}
	const lease = 2 * time.Second

	var fleet []*member
	for i := range 3 {
		core, logs := observer.New(zapcore.InfoLevel)
		log := zap.New(core)
		owner := fmt.Sprintf("worker.%d/1", i+1)
		el, err := elect.New(elect.Options{Redis: rdb, Role: "reporter", Owner: owner, Lease: lease, Logger: log})
		require.NoError(t, err)
		mon, err := monitor.NewMonitor(monitor.MonitorOptions{
			Logger: log, Worker: owner, EvalInterval: 100 * time.Millisecond, Thresholds: th,
			Queues:   func(ctx context.Context) ([]queue.QueueStats, error) { return queue.Stats(ctx, insp) },
			Serving:  func() []string { return tasks.QueueNames },
			Reporter: el.Leader,
		})
		require.NoError(t, err)
		m := &member{el: el, mon: mon, logs: logs}
		el.Start()
		mon.Start()
		t.Cleanup(m.stop)
		fleet = append(fleet, m)
	}
	alerts := func(severity string) (n int, who []int) {
		for i, m := range fleet {
			for _, e := range m.logs.FilterMessage("alert").All() {
				f := e.ContextMap()
				if f["metric"] == monitor.MetricQueueLength && f["scope"] == tasks.QueueCalls && f["severity"] == severity {
					n++
					who = append(who, i)
				}
			}
		}
		return n, who
	}
	leader := func() int {
		for i, m := range fleet {
			if m.el.Leader() {
				return i
			}
		}
		return -1
	}
	require.Eventually(t, func() bool { return leader() >= 0 }, wait, 10*time.Millisecond)

	enqueue(4) // warning
	require.Eventually(t, func() bool { n, _ := alerts("warning"); return n >= 1 }, wait, 10*time.Millisecond)
	first := leader()
	// Every worker has graded the queue (snapshots say warning); only one
	// logged it.
	for _, m := range fleet {
		require.Eventually(t, func() bool { return queueLevel(m.mon.Latest()) == monitor.SeverityWarning }, wait, 10*time.Millisecond)
	}
	n, who := alerts("warning")
	require.Equal(t, 1, n, "one alert for the fleet")
	require.Equal(t, []int{first}, who, "logged by the reporter")

	fleet[first].stop() // gives its lease up
	require.Eventually(t, func() bool { l := leader(); return l >= 0 && l != first }, wait, 10*time.Millisecond)
	second := leader()
	enqueue(3) // critical
	require.Eventually(t, func() bool { n, _ := alerts("critical"); return n >= 1 }, wait, 10*time.Millisecond)
	_, err := insp.DeleteAllPendingTasks(tasks.QueueCalls)
	require.NoError(t, err)
	resolved := func() (who []int) {
		for i, m := range fleet {
			for _, e := range m.logs.FilterMessage("resolved").All() {
				if e.ContextMap()["metric"] == monitor.MetricQueueLength {
					who = append(who, i)
				}
			}
		}
		return who
	}
	require.Eventually(t, func() bool { return len(resolved()) >= 1 }, wait, 10*time.Millisecond)
	// Let every survivor grade the empty queue before counting.
	for i, m := range fleet {
		if i != first {
			require.Eventually(t, func() bool { return queueLevel(m.mon.Latest()) == monitor.SeverityOK }, wait, 10*time.Millisecond)
		}
	}
	n, who = alerts("critical")
	require.Equal(t, 1, n)
	require.Equal(t, []int{second}, who, "the new reporter said it")
	require.Equal(t, []int{second}, resolved())
	require.Equal(t, 1, func() int { n, _ := alerts("warning"); return n }(), "the ongoing warning was not repeated by the new reporter")
}

// wait bounds each wait for something the fleet must do: generous, since
// nothing here measures speed.
const wait = 20 * time.Second

func queueLevel(s monitor.Snapshot) monitor.Severity {
	for _, r := range s.Readings {
		if r.Name == monitor.MetricQueueLength && r.Scope == tasks.QueueCalls {
			return r.Level
		}
	}
	return monitor.SeverityNone
}
