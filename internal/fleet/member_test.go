package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/fleet"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

const wait = 20 * time.Second

// A dyno counts its live calls and publishes them; once the scaler sets
// its drain flag it refuses new calls (deferred, no retry spent) while the
// call it holds goes on, and reports itself draining; its report of "no
// live call" comes only after that call ended. Other tasks still run.
func TestDrainingDynoFinishesItsCallsAndTakesNoNew(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	m, err := fleet.NewMember(fleet.MemberOptions{Redis: c, Dyno: "worker.2", Owner: "worker.2/7", Beat: 50 * time.Millisecond})
	require.NoError(t, err)
	m.Start()
	t.Cleanup(m.Shutdown)

	release := make(chan struct{})
	started := make(chan struct{}, 4)
	h := m.Middleware(tasks.TypeCallOutbound)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		started <- struct{}{}
		<-release
		return nil
	}))
	call := asynq.NewTask(tasks.TypeCallOutbound, nil)
	done := make(chan error, 1)
	go func() { done <- h.ProcessTask(t.Context(), call) }()
	<-started
	presence := func() fleet.Presence {
		ps, err := fleet.ReadPresence(t.Context(), c)
		require.NoError(t, err)
		return ps["worker.2"]
	}
	require.Eventually(t, func() bool { return presence().LiveCalls == 1 }, wait, 10*time.Millisecond)
	require.False(t, presence().Draining)

	require.NoError(t, fleet.SetDrain(t.Context(), c, true, time.Minute, "worker.2"))
	require.Eventually(t, m.Draining, wait, 10*time.Millisecond)
	err = h.ProcessTask(t.Context(), call)
	require.True(t, worker.Deferred(err), "a new call is deferred: %v", err)
	require.Equal(t, fleet.DrainRetryAfter, worker.RetryDelay(0, err, call))
	other := m.Middleware(tasks.TypeCallOutbound)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	require.NoError(t, other.ProcessTask(t.Context(), asynq.NewTask(tasks.TypeCallAnalyze, nil)), "analyses go on")
	require.Eventually(t, func() bool { p := presence(); return p.Draining && p.LiveCalls == 1 }, wait, 10*time.Millisecond)

	close(release)
	require.NoError(t, <-done)
	require.Eventually(t, func() bool { p := presence(); return p.Draining && p.LiveCalls == 0 }, wait, 10*time.Millisecond)

	require.NoError(t, fleet.SetDrain(t.Context(), c, false, 0, "worker.2"))
	require.Eventually(t, func() bool { return !m.Draining() }, wait, 10*time.Millisecond)
	m.Shutdown()
	ps, err := fleet.ReadPresence(t.Context(), c)
	require.NoError(t, err)
	require.NotContains(t, ps, "worker.2", "a stopped dyno withdraws its presence")
}

func TestBudgets(t *testing.T) {
	in := fleet.BudgetInput{Dynos: 100, Concurrency: 40, MongoPool: 50, MongoMaxConnections: 1500, RedisMaxConnections: 10000}
	mongo, redis := fleet.Budgets(in)
	require.Equal(t, fleet.Budget{PerDyno: 52, Total: 5200, Limit: 1490}, mongo)
	require.True(t, mongo.Over())
	require.Equal(t, fleet.Budget{PerDyno: 101, Total: 10100, Limit: 10000}, redis)
	fs := fleet.VerifyBudgets(in)
	require.Len(t, fs, 2)
	require.Equal(t, "WARN", string(fs[0].Level))
	require.Contains(t, fs[0].Detail, "100 dynos × 52 (pool 50 + 2 monitoring) = 5200 of 1490")
	require.Contains(t, fs[0].Detail, "lower MONGODB_MAX_POOL_SIZE")
	in.Dynos = 10
	for _, f := range fleet.VerifyBudgets(in) {
		require.Equal(t, "OK", string(f.Level), f.Detail)
	}
}
