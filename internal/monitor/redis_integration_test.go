package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/docshield/voice-worker/internal/testenv"
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
		enqueue(t, c, tasks.TypeCallAnalyze, tasks.QueueDefault, asynq.ProcessIn(time.Hour))
	}
	insp := inspector(t, opt)
	queues := func(ctx context.Context) ([]queue.QueueStats, error) { return queue.Stats(ctx, insp) }

	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	e.th.QueueLength = Threshold{Warning: 2, Critical: 3}
	e.queues = queues
	e.evaluate(context.Background())

	got := map[string]float64{}
	for _, r := range e.latest.Load().Readings {
		if r.Name == MetricQueueLength {
			got[r.Scope] = r.Value
		}
	}
	require.Equal(t, map[string]float64{tasks.QueueCalls: 3, tasks.QueueDefault: 2, tasks.QueueLow: 0}, got,
		"pending and scheduled count; an unused queue reads as zero")
	alerts := events(logs, "alert")
	require.Len(t, alerts, 2)
	require.Equal(t, tasks.QueueCalls, alerts[0]["scope"])
	require.Equal(t, "critical", alerts[0]["severity"])
	require.Equal(t, tasks.QueueDefault, alerts[1]["scope"])
	require.Equal(t, "warning", alerts[1]["severity"])

	// `worker health` reads the same numbers live.
	rs := CurrentMetrics(context.Background(), MetricSources{Queues: queues}, DefaultThresholds())
	require.Len(t, rs, 3)
	require.Equal(t, 3.0, rs[0].Value)
	require.Equal(t, SeverityOK, rs[0].Level)
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
