package monitor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// privateRedis starts a redis-server for this test alone: asynq's queue
// names are fixed, so a shared one would mix tests' tasks.
func privateRedis(t *testing.T) asynq.RedisClientOpt {
	t.Helper()
	r := testenv.StartRedis(t)
	return asynq.RedisClientOpt{Addr: r.Addr()}
}

func inspector(t *testing.T, opt asynq.RedisClientOpt) *asynq.Inspector {
	t.Helper()
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	return insp
}

func enqueue(t *testing.T, c *asynq.Client, typ, queueName string, opts ...asynq.Option) *asynq.TaskInfo {
	t.Helper()
	info, err := c.Enqueue(asynq.NewTask(typ, []byte(`{"attempt_id":"x"}`)), append([]asynq.Option{asynq.Queue(queueName)}, opts...)...)
	require.NoError(t, err)
	return info
}

func TestQueueLengthFromRealRedis(t *testing.T) {
	opt := privateRedis(t)
	c := asynq.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	for range 3 {
		enqueue(t, c, tasks.TypeCallOutbound, tasks.QueueCalls)
	}
	for range 2 {
		enqueue(t, c, tasks.TypeCallAnalyze, tasks.QueueAnalysis, asynq.ProcessIn(time.Hour))
	}
	insp := inspector(t, opt)
	queues := func(ctx context.Context) ([]queue.QueueStats, error) { return queue.Stats(ctx, insp) }

	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	e.th.QueueLength = Threshold{Warning: 2, Critical: 3}
	e.queues = queues
	// This process serves every queue (its heartbeat is not in Redis yet).
	e.serving = func() []string { return tasks.QueueNames }
	e.evaluate(context.Background())

	got := map[string]float64{}
	for _, r := range e.latest.Load().Readings {
		if r.Name == MetricQueueLength {
			got[r.Scope] = r.Value
		}
	}
	require.Equal(t, map[string]float64{tasks.QueueCalls: 3, tasks.QueueDefault: 0, tasks.QueueAnalysis: 2, tasks.QueueLow: 0}, got,
		"pending and scheduled count; an unused queue reads as zero")
	alerts := events(logs, "alert")
	require.Len(t, alerts, 2)
	require.Equal(t, tasks.QueueCalls, alerts[0]["scope"])
	require.Equal(t, "critical", alerts[0]["severity"])
	require.Equal(t, tasks.QueueAnalysis, alerts[1]["scope"])
	require.Equal(t, "warning", alerts[1]["severity"])

	// `worker health` reads the same numbers live; with no worker
	// running, the 5 waiting tasks are unserved.
	rs := CurrentMetrics(context.Background(), MetricSources{Queues: queues}, DefaultThresholds())
	require.Len(t, rs, len(tasks.QueueNames)+1)
	require.Equal(t, 3.0, rs[0].Value)
	require.Equal(t, SeverityOK, rs[0].Level)
	unserved := rs[len(rs)-1]
	require.Equal(t, MetricUnserved, unserved.Name)
	require.Equal(t, 5.0, unserved.Value)
	require.Equal(t, SeverityCritical, unserved.Level)
}

// A task on a queue no running worker serves (here one that is none of
// ours, "critical") alerts once, naming the queue, even though the worker
// evaluating serves every queue of its own; it resolves once the queue is
// empty.
func TestUnservedQueueAlertsFromRealRedis(t *testing.T) {
	opt := privateRedis(t)
	c := asynq.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	stray := enqueue(t, c, tasks.TypeCallOutbound, "critical")
	insp := inspector(t, opt)

	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	e.queues = func(ctx context.Context) ([]queue.QueueStats, error) { return queue.Stats(ctx, insp) }
	e.serving = func() []string { return tasks.QueueNames }
	e.evaluate(context.Background())
	e.evaluate(context.Background())
	alerts := events(logs, "alert")
	require.Len(t, alerts, 1, "once, not every evaluation")
	require.Equal(t, MetricUnserved, alerts[0]["metric"])
	require.Equal(t, 1.0, alerts[0]["value"])
	require.Equal(t, "critical", alerts[0]["severity"])
	var r MetricReading
	for _, x := range e.latest.Load().Readings {
		if x.Name == MetricUnserved {
			r = x
		}
	}
	require.Contains(t, r.Detail, "critical: 1 (not one of our queues")

	require.NoError(t, insp.DeleteTask("critical", stray.ID))
	e.evaluate(context.Background())
	resolved := events(logs, "resolved")
	require.Len(t, resolved, 1)
	require.Equal(t, MetricUnserved, resolved[0]["metric"])
}

// Redis's used_memory against its maxmemory, read with INFO from a real
// server: a warning well before noeviction starts refusing enqueues.
func TestRedisMemoryAlertFromRealRedis(t *testing.T) {
	opt := privateRedis(t)
	rc := redis.NewClient(&redis.Options{Addr: opt.Addr})
	t.Cleanup(func() { _ = rc.Close() })
	ctx := context.Background()
	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	e.redis = func(ctx context.Context) (queue.RedisInfo, error) { return queue.Inspect(ctx, opt) }

	// No maxmemory: shown, not graded.
	e.evaluate(ctx)
	r := reading(t, e, MetricRedisMemory)
	require.Equal(t, UnitMB, r.Unit)
	require.Equal(t, SeverityNone, r.Level)
	require.Empty(t, events(logs, "alert"))

	// A limit at 1.4 × what is used now: 71%, between warning and critical.
	info, err := queue.Inspect(ctx, opt)
	require.NoError(t, err)
	require.NoError(t, rc.ConfigSet(ctx, "maxmemory", fmt.Sprint(info.UsedMemoryBytes*14/10)).Err())
	e.evaluate(ctx)
	r = reading(t, e, MetricRedisMemory)
	require.Equal(t, UnitPercent, r.Unit)
	require.InDelta(t, 71, r.Value, 5)
	alerts := events(logs, "alert")
	require.Len(t, alerts, 1)
	require.Equal(t, MetricRedisMemory, alerts[0]["metric"])
	require.Equal(t, "warning", alerts[0]["severity"])
	require.Equal(t, 60.0, alerts[0]["threshold"])

	// `worker health` grades the same reading live.
	rs := CurrentMetrics(ctx, MetricSources{Redis: e.redis}, DefaultThresholds())
	require.Len(t, rs, 1)
	require.Equal(t, SeverityWarning, rs[0].Level)
	require.Contains(t, rs[0].Detail, "policy noeviction")
}

func reading(t *testing.T, e *evaluator, name string) MetricReading {
	t.Helper()
	for _, r := range e.latest.Load().Readings {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s reading", name)
	return MetricReading{}
}

func TestRedisSnapshotsRoundTrip(t *testing.T) {
	opt := privateRedis(t)
	s := NewRedisSnapshots(opt, 90*time.Second)
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()

	none, err := s.Read(ctx)
	require.NoError(t, err)
	require.Empty(t, none)

	at := newFakeClock().Now()
	b := workerSnapshot("worker.2/9", 470, true)
	b.At = at
	require.NoError(t, s.Publish(ctx, b))
	require.NoError(t, s.Publish(ctx, workerSnapshot("worker.1/7", 300, false)))
	b.UnderPressure = false
	require.NoError(t, s.Publish(ctx, b), "a worker's new snapshot replaces its old one")

	got, err := s.Read(ctx)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "worker.1/7", got[0].Worker)
	require.Equal(t, "worker.2/9", got[1].Worker)
	require.False(t, got[1].UnderPressure)
	require.True(t, got[1].At.Equal(at))
	require.Equal(t, SeverityWarning, got[1].Readings[1].Level)

	rc := redis.NewClient(&redis.Options{Addr: opt.Addr})
	t.Cleanup(func() { _ = rc.Close() })
	ttl, err := rc.TTL(ctx, snapshotPrefix+"worker.2/9").Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Duration(0), "a dead worker's snapshot expires by itself")
	require.LessOrEqual(t, ttl, 90*time.Second)

	require.NoError(t, rc.Set(ctx, snapshotPrefix+"broken", "{", 0).Err())
	_, err = s.Read(ctx)
	require.ErrorContains(t, err, "broken")
}
