package scaler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/fleet"
	"github.com/docshield/voice-worker/internal/scaler"
	"github.com/docshield/voice-worker/internal/scaler/herokusim"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const wait = 20 * time.Second

type rig struct {
	t      *testing.T
	rdb    redis.UniversalClient
	client *asynq.Client
	insp   *asynq.Inspector
	api    *herokusim.Server
	logs   *observer.ObservedLogs
	dynos  map[string]*fleet.Member
}

func newRig(t *testing.T, quantity int) *rig {
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	api, err := herokusim.Start(herokusim.Options{App: "docshield-voice", Token: "hk-test-token", ProcessType: "worker", Quantity: quantity})
	require.NoError(t, err)
	t.Cleanup(api.Close)
	g := &rig{t: t, api: api, dynos: map[string]*fleet.Member{}}
	g.rdb = redis.NewClient(&redis.Options{Addr: r.Addr()})
	g.client = asynq.NewClient(opt)
	g.insp = asynq.NewInspector(opt)
	t.Cleanup(func() { _ = g.client.Close(); _ = g.insp.Close(); _ = g.rdb.Close() })
	return g
}

func (g *rig) start(o scaler.Options) *scaler.Scaler {
	core, logs := observer.New(zapcore.InfoLevel)
	g.logs = logs
	api, err := scaler.NewHeroku(g.api.URL(), "hk-test-token", "docshield-voice", "worker")
	require.NoError(g.t, err)
	o.Redis, o.Inspector, o.API, o.Logger = g.rdb, g.insp, api, zap.New(core)
	o.Leader = func() bool { return true }
	o.ProcessType = "worker"
	o.Interval = 50 * time.Millisecond
	o.TargetLatency = time.Hour
	if o.DrainTimeout == 0 {
		o.DrainTimeout = time.Hour
	}
	s, err := scaler.New(o)
	require.NoError(g.t, err)
	s.Start()
	g.t.Cleanup(s.Shutdown)
	return s
}

// waiting puts n calls on the queue, where no worker serves them.
func (g *rig) waiting(n int) {
	for range n {
		_, err := g.client.Enqueue(asynq.NewTask(tasks.TypeCallOutbound, []byte(`{"attempt_id":"x"}`)), asynq.Queue(tasks.QueueCalls))
		require.NoError(g.t, err)
	}
}

// dyno starts a member for name; its calls run until the returned func is
// called.
func (g *rig) dyno(name string) *fleet.Member {
	m, err := fleet.NewMember(fleet.MemberOptions{Redis: g.rdb, Dyno: name, Owner: name + "/1", Beat: 20 * time.Millisecond})
	require.NoError(g.t, err)
	m.Start()
	g.t.Cleanup(m.Shutdown)
	g.dynos[name] = m
	return m
}

// call runs one call on m until end is closed.
func (g *rig) call(m *fleet.Member, end <-chan struct{}) {
	started := make(chan struct{})
	go func() {
		_ = m.Middleware(tasks.TypeCallOutbound)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			close(started)
			<-end
			return nil
		})).ProcessTask(context.Background(), asynq.NewTask(tasks.TypeCallOutbound, nil))
	}()
	<-started
}

// afterLooks waits until the scaler has looked n more times: what it had
// to do by then, it has done.
func (g *rig) afterLooks(n int) {
	from := g.api.Looks()
	require.Eventually(g.t, func() bool { return g.api.Looks() >= from+n }, wait, 5*time.Millisecond)
}

func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Message)
	}
	return out
}

// The formation grows at once to what the waiting calls ask for; when
// they are gone it shrinks, but only after the dynos that will stop (the
// highest numbers) have finished their calls: worker.3 holds one, and the
// formation stays at 3 until it ends. worker.1, which stays, is never
// flagged.
func TestGrowsAtOnceShrinksOnlyWhenTheDrainedDynosAreIdle(t *testing.T) {
	t.Parallel()
	g := newRig(t, 1)
	g.waiting(5)
	g.start(scaler.Options{MinDynos: 1, MaxDynos: 4, CallsPerDyno: 2})
	require.Eventually(t, func() bool { return g.logs.FilterMessage("scaler.scaled").Len() == 1 }, wait, 5*time.Millisecond)
	require.Equal(t, []int{3}, g.api.Scaled(), "5 calls at 2 per dyno")

	w1, w3 := g.dyno("worker.1"), g.dyno("worker.3")
	g.dyno("worker.2")
	end := make(chan struct{})
	g.call(w3, end)
	_, err := g.insp.DeleteAllPendingTasks(tasks.QueueCalls)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return g.dynos["worker.2"].Draining() && w3.Draining() }, wait, 5*time.Millisecond)
	g.afterLooks(10)
	require.Equal(t, []int{3}, g.api.Scaled(), "worker.3 still holds a call: the formation waits")
	require.False(t, w1.Draining(), "the dyno that stays takes calls")

	close(end)
	require.Eventually(t, func() bool { return g.logs.FilterMessage("scaler.scaled").Len() == 2 }, wait, 5*time.Millisecond)
	require.Equal(t, []int{3, 1}, g.api.Scaled())
	require.Equal(t, []string{"scaler.scaled", "scaler.draining", "scaler.scaled"}, messages(g.logs))
	last := g.logs.FilterMessage("scaler.scaled").All()[1]
	require.Equal(t, zapcore.InfoLevel, last.Level)
	require.Equal(t, "drained", last.ContextMap()["reason"])
}

// Calls arriving during a drain cancel it: the flags are lifted and the
// formation stays.
func TestRisingDemandCancelsADrain(t *testing.T) {
	t.Parallel()
	g := newRig(t, 3)
	w3 := g.dyno("worker.3")
	end := make(chan struct{})
	defer close(end)
	g.call(w3, end) // keeps the drain from finishing
	g.start(scaler.Options{MinDynos: 1, MaxDynos: 4, CallsPerDyno: 2})
	require.Eventually(t, w3.Draining, wait, 5*time.Millisecond)
	g.waiting(5)
	require.Eventually(t, func() bool { return g.logs.FilterMessage("scaler.drain_cancelled").Len() == 1 }, wait, 5*time.Millisecond)
	require.Eventually(t, func() bool { return !w3.Draining() }, wait, 5*time.Millisecond)
	g.afterLooks(5)
	require.Empty(t, g.api.Scaled(), "nothing to change: 3 dynos for 5 calls")
}

// A dyno that never finishes does not hold the formation for ever: past
// the drain bound the formation shrinks, and the log says a call was cut.
func TestDrainBound(t *testing.T) {
	t.Parallel()
	g := newRig(t, 2)
	w2 := g.dyno("worker.2")
	end := make(chan struct{})
	defer close(end)
	g.call(w2, end)
	g.start(scaler.Options{MinDynos: 1, MaxDynos: 2, CallsPerDyno: 2, DrainTimeout: 300 * time.Millisecond})
	require.Eventually(t, func() bool { return g.logs.FilterMessage("scaler.scaled").Len() == 1 }, wait, 5*time.Millisecond)
	require.Equal(t, []int{1}, g.api.Scaled())
	e := g.logs.FilterMessage("scaler.scaled").All()[0]
	require.Equal(t, zapcore.WarnLevel, e.Level)
	require.Equal(t, "drain timeout", e.ContextMap()["reason"])
	require.Equal(t, int64(1), e.ContextMap()["live_calls_cut"], "%v", e.ContextMap())
}

// Cooldowns hold between changes; the state (and so the cooldown) is in
// Redis, where a new leader finds it.
func TestCooldownAndAPIErrors(t *testing.T) {
	t.Parallel()
	g := newRig(t, 1)
	g.waiting(3)
	g.start(scaler.Options{MinDynos: 1, MaxDynos: 4, CallsPerDyno: 2, UpCooldown: time.Hour})
	require.Eventually(t, func() bool { return len(g.api.Scaled()) == 1 }, wait, 5*time.Millisecond)
	g.waiting(4)
	g.afterLooks(5)
	require.Equal(t, []int{2}, g.api.Scaled(), "more calls, but within the cooldown")
	st, err := g.rdb.Get(t.Context(), scaler.StateKey).Result()
	require.NoError(t, err)
	require.Contains(t, st, "last_change")

	bad, err := scaler.NewHeroku(g.api.URL(), "wrong", "docshield-voice", "worker")
	require.NoError(t, err)
	_, err = bad.Formation(t.Context())
	var ae *scaler.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 401, ae.Status)
	require.Equal(t, "unauthorized", ae.ID)
	require.NotContains(t, err.Error(), "wrong", "the token is never in an error")
}

func TestWant(t *testing.T) {
	s, err := scaler.New(scaler.Options{Redis: redis.NewClient(&redis.Options{}), Inspector: &asynq.Inspector{},
		API: &scaler.Heroku{}, Leader: func() bool { return false }, ProcessType: "worker",
		MinDynos: 1, MaxDynos: 10, CallsPerDyno: 40, TargetLatency: 30 * time.Second, Interval: time.Second, DrainTimeout: time.Minute})
	require.NoError(t, err)
	for _, c := range []struct {
		load    scaler.Load
		current int
		want    int
	}{
		{scaler.Load{}, 3, 1},
		{scaler.Load{Active: 40}, 1, 1},
		{scaler.Load{Active: 40, Waiting: 1}, 1, 2},
		{scaler.Load{Active: 10, Latency: time.Minute}, 1, 2},
		{scaler.Load{Active: 1000}, 1, 10},
	} {
		require.Equal(t, c.want, s.Want(c.load, c.current), fmt.Sprintf("%+v at %d", c.load, c.current))
	}
	require.Equal(t, "worker.3", s.Dyno(3))
}
