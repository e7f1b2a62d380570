package queue

import (
	"context"
	"testing"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/docshield/voice-worker/internal/testenv"
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
	require.Equal(t, tasks.QueueDefault, info.Queue)
	require.Equal(t, DefaultMaxRetry[tasks.TypeCallAnalyze], info.MaxRetry)
	_, err = c.Enqueue(ctx, tasks.CallAnalyze{AttemptID: "attempt-0001"}, asynq.TaskID("analyze-1"))
	require.ErrorIs(t, err, asynq.ErrTaskIDConflict)
	_, err = c.Enqueue(ctx, tasks.CallAnalyze{AttemptID: "bad id"})
	require.ErrorIs(t, err, tasks.ErrInvalidPayload)

	insp := asynq.NewInspector(opt)
	defer insp.Close()
	stats, err := Stats(ctx, insp)
	require.NoError(t, err)
	require.Len(t, stats, 3)
	for _, s := range stats {
		want := 0
		if s.Queue == tasks.QueueDefault {
			want = 1
		}
		require.Equal(t, want, s.Backlog(), s.Queue)
	}
	ri, err := Inspect(ctx, opt)
	require.NoError(t, err)
	require.True(t, ri.AOFEnabled)
	require.NotEmpty(t, ri.Version)
}
