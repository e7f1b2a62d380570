package queue

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

func TestConnOpt(t *testing.T) {
	opt, err := ConnOpt(config.Redis{URL: "rediss://:pw@redis.example.com:6380/2", Source: "REDIS_TLS_URL", InsecureSkipVerify: true})
	require.NoError(t, err)
	require.Equal(t, "redis.example.com:6380", opt.Addr)
	require.Equal(t, 2, opt.DB)
	require.Equal(t, "pw", opt.Password)
	require.NotNil(t, opt.TLSConfig)
	require.True(t, opt.TLSConfig.InsecureSkipVerify)

	opt, err = ConnOpt(config.Redis{URL: "rediss://redis.example.com:6380", Source: "REDIS_URL"})
	require.NoError(t, err)
	require.False(t, opt.TLSConfig.InsecureSkipVerify, "certificates are verified unless asked otherwise")

	opt, err = ConnOpt(config.Redis{URL: "redis://127.0.0.1:6379/0", Source: "REDIS_URL"})
	require.NoError(t, err)
	require.Nil(t, opt.TLSConfig)

	_, err = ConnOpt(config.Redis{URL: "redis://:secretpw@host:notaport/x", Source: "REDISCLOUD_URL"})
	require.ErrorContains(t, err, "REDISCLOUD_URL")
	require.NotContains(t, err.Error(), "secretpw")
}

func TestParseInfo(t *testing.T) {
	info := parseInfo("# Server\r\nredis_version:7.0.15\r\n# Memory\r\nused_memory:1048576\r\nmaxmemory:104857600\r\n" +
		"maxmemory_policy:allkeys-lru\r\n# Persistence\r\naof_enabled:1\r\n# Replication\r\nrole:master\r\n# Clients\r\nconnected_clients:7\r\n")
	require.Equal(t, RedisInfo{Version: "7.0.15", Role: "master", MaxmemoryPolicy: "allkeys-lru", AOFEnabled: true,
		UsedMemoryBytes: 1 << 20, MaxMemoryBytes: 100 << 20, ConnectedClients: 7}, info)
}

func TestEnqueueAndStatsAgainstRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	c := NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	info, err := c.Enqueue(ctx, tasks.CallAnalyze{AttemptID: "attempt-0001"}, asynq.TaskID("analyze-1"))
	require.NoError(t, err)
	require.Equal(t, tasks.QueueAnalysis, info.Queue)
	require.Equal(t, tasks.MaxRetry(tasks.TypeCallAnalyze), info.MaxRetry)
	_, err = c.Enqueue(ctx, tasks.CallAnalyze{AttemptID: "attempt-0001"}, asynq.TaskID("analyze-1"))
	require.ErrorIs(t, err, asynq.ErrTaskIDConflict)
	_, err = c.Enqueue(ctx, tasks.CallAnalyze{AttemptID: "bad id"})
	require.ErrorIs(t, err, tasks.ErrInvalidPayload)

	insp := asynq.NewInspector(opt)
	defer insp.Close()
	stats, err := Stats(ctx, insp)
	require.NoError(t, err)
	require.Len(t, stats, len(tasks.QueueNames))
	for _, s := range stats {
		want := 0
		if s.Queue == tasks.QueueAnalysis {
			want = 1
		}
		require.Equal(t, want, s.Backlog(), s.Queue)
		require.False(t, s.Foreign)
		require.Zero(t, s.Servers, "no worker runs")
		require.Equal(t, want == 1, s.Unserved(), s.Queue)
	}
	ri, err := Inspect(ctx, opt)
	require.NoError(t, err)
	require.True(t, ri.AOFEnabled)
	require.NotEmpty(t, ri.Version)
}

// A producer's task on a queue that is none of ours, and queues served by
// a running asynq server, both read from the real Redis.
func TestStatsListsEveryQueueAndWhoServesIt(t *testing.T) {
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	ac := asynq.NewClient(opt)
	defer ac.Close()
	_, err := ac.Enqueue(asynq.NewTask(tasks.TypeSystemProbe, []byte(`{}`)), asynq.Queue("critical"))
	require.NoError(t, err)

	srv := asynq.NewServer(opt, asynq.Config{Queues: map[string]int{tasks.QueueDefault: 1, tasks.QueueLow: 1}, LogLevel: asynq.FatalLevel})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })))
	defer srv.Shutdown()

	insp := asynq.NewInspector(opt)
	defer insp.Close()
	var byQueue map[string]QueueStats
	require.Eventually(t, func() bool {
		stats, err := Stats(context.Background(), insp)
		require.NoError(t, err)
		byQueue = map[string]QueueStats{}
		for _, s := range stats {
			byQueue[s.Queue] = s
		}
		return byQueue[tasks.QueueLow].Servers == 1
	}, 10*time.Second, 20*time.Millisecond, "the server's heartbeat lists its queues")
	require.Len(t, byQueue, len(tasks.QueueNames)+1)
	crit := byQueue["critical"]
	require.True(t, crit.Foreign)
	require.Equal(t, 1, crit.Pending)
	require.Zero(t, crit.Servers)
	require.True(t, crit.Unserved())
	require.Zero(t, byQueue[tasks.QueueCalls].Servers)
	require.Equal(t, 1, byQueue[tasks.QueueDefault].Servers)
	require.False(t, byQueue[tasks.QueueCalls].Unserved(), "nothing waits on calls")
}

func TestEnqueueRefusesOversizedPayload(t *testing.T) {
	r := testenv.StartRedis(t)
	c := NewClient(asynq.RedisClientOpt{Addr: r.Addr()})
	defer c.Close()
	big := tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: "oneoff-0001", Phone: "+12125550100", Instructions: "Confirm.",
		Greeting: strings.Repeat("x", tasks.MaxPayloadBytes),
	}}
	_, err := c.Enqueue(context.Background(), big)
	require.ErrorIs(t, err, tasks.ErrPayloadTooLarge)
	require.ErrorContains(t, err, "call:outbound")
	require.NoError(t, tasks.CheckPayloadSize(make([]byte, tasks.MaxPayloadBytes)))
}

// RunArchived revives only an archived task: one that is not there, or is
// pending, is left alone; an archived one is pending again, and still the
// one task under its id.
func TestRunArchivedRevivesOnlyArchivedTasks(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	c := NewClient(opt)
	defer c.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	ctx := context.Background()
	q := tasks.CallOutbound{}.Queue()

	ran, err := c.RunArchived(q, "attempt-none")
	require.NoError(t, err)
	require.False(t, ran, "no such task (and no such queue yet)")

	_, err = c.Enqueue(ctx, tasks.CallOutbound{AttemptID: "attempt-0001"}, asynq.TaskID("attempt-0001"))
	require.NoError(t, err)
	ran, err = c.RunArchived(q, "attempt-0001")
	require.NoError(t, err)
	require.False(t, ran, "pending: it will run by itself")

	require.NoError(t, insp.ArchiveTask(q, "attempt-0001"))
	ran, err = c.RunArchived(q, "attempt-0001")
	require.NoError(t, err)
	require.True(t, ran)
	info, err := insp.GetTaskInfo(q, "attempt-0001")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State)
	_, err = c.Enqueue(ctx, tasks.CallOutbound{AttemptID: "attempt-0001"}, asynq.TaskID("attempt-0001"))
	require.ErrorIs(t, err, asynq.ErrTaskIDConflict, "one task per attempt, revived or not")
}
