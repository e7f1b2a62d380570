package call_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// queueEnv is a test's own database and private Redis, with a queue
// client and an inspector on it.
func queueEnv(t *testing.T) (*store.Store, asynq.RedisClientOpt, *queue.Client, *asynq.Inspector) {
	t.Helper()
	st := openStore(t)
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	q := queue.NewClient(opt)
	t.Cleanup(func() { _ = q.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	return st, opt, q, insp
}

// poll waits, bounded, until cond holds.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// scheduledCalls lists the call tasks waiting for their time: task id →
// payload.
func scheduledCalls(t *testing.T, insp *asynq.Inspector) map[string]string {
	t.Helper()
	infos, err := insp.ListScheduledTasks(tasks.QueueCalls)
	if err != nil {
		return nil // the queue does not exist yet
	}
	out := map[string]string{}
	for _, info := range infos {
		out[info.ID] = string(info.Payload)
	}
	return out
}

// The incident: an inline call to +81355550199 enqueued at 00:29 Tokyo
// time was dialed at once. Through the real worker (asynq on a private
// Redis, FerretDB): at night the call is not claimed and not dialed, no
// retry is spent, the call document says why and until when, and a task
// carrying only the attempt id waits for 08:00 Tokyo. Run early, that task
// waits again without losing the call; at the opening the call is placed.
func TestInlineCallAtNightWaitsForItsHours(t *testing.T) {
	st, opt, q, insp := queueEnv(t)
	ctx := context.Background()
	clock := testenv.NewClock(time.Date(2026, 11, 28, 15, 29, 0, 0, time.UTC)) // Sun 00:29 JST
	runner := &countingRunner{}
	srv := worker.New(worker.Options{Redis: opt, Concurrency: 2, ShutdownTimeout: 5 * time.Second, Logger: zaptest.NewLogger(t)})
	srv.Handle(tasks.TypeCallOutbound, &call.Handler{Calls: st, Runner: runner, Queue: q, Owner: "w1", Now: clock.Now})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})

	const id = "oneoff-tokyo-0001"
	info, err := q.Enqueue(ctx, tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: id, Phone: "+81355550199", Instructions: "Confirm the appointment.",
	}}, asynq.TaskID(id))
	require.NoError(t, err)
	var c *store.Call
	poll(t, "the call to wait", func() bool {
		c, err = st.GetCall(ctx, id)
		return err == nil && !c.WaitingUntil.IsZero()
	})
	opening := time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC) // Sun 08:00 JST
	require.Equal(t, store.CallQueued, c.Status, "not claimed")
	require.Zero(t, c.Claims)
	require.Equal(t, opening, c.WaitingUntil.UTC())
	require.Contains(t, c.WaitingReason, "outside calling hours")
	require.Contains(t, c.WaitingReason, "it is Sun 00:29 JST in Asia/Tokyo")
	require.Zero(t, runner.runs.Load(), "not dialed")

	// The original task succeeded: no retry spent, nothing archived.
	poll(t, "the inline task to finish", func() bool {
		_, err := insp.GetTaskInfo(tasks.QueueCalls, info.ID)
		return err != nil // deleted once processed
	})
	qi, err := insp.GetQueueInfo(tasks.QueueCalls)
	require.NoError(t, err)
	require.Zero(t, qi.Retry)
	require.Zero(t, qi.Archived)
	require.Zero(t, qi.FailedTotal)

	first := id + "@" + itoa(opening.Unix())
	sched := scheduledCalls(t, insp)
	require.Len(t, sched, 1)
	require.JSONEq(t, `{"attempt_id":"`+id+`"}`, sched[first], "only the id: the number stays in MongoDB")
	ti, err := insp.GetTaskInfo(tasks.QueueCalls, first)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(opening.Sub(clock.Now())), ti.NextProcessAt, time.Minute,
		"due in 7 h 31 min, when it is 08:00 in Tokyo")

	// Run early (the clock reads 07:59:30 JST): it waits again, under a
	// new id, rather than colliding with itself and vanishing.
	clock.Set(opening.Add(-30 * time.Second))
	require.NoError(t, insp.RunTask(tasks.QueueCalls, first))
	second := id + "@" + itoa(opening.Unix()+1)
	poll(t, "the call to be scheduled again", func() bool { _, ok := scheduledCalls(t, insp)[second]; return ok })
	require.Zero(t, runner.runs.Load())

	// The clock reaches the opening: the call is placed, once.
	clock.Set(opening.Add(30 * time.Second))
	require.NoError(t, insp.RunTask(tasks.QueueCalls, second))
	poll(t, "the call to be placed", func() bool { return runner.runs.Load() == 1 })
	c, err = st.GetCall(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.CallDialing, c.Status)
	require.Equal(t, 1, c.Claims)
	require.Empty(t, scheduledCalls(t, insp))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A call claimed with two minutes of hours left is not started: its setup
// could carry the dial past 21:00, and a claimed call is never retried.
func TestInlineCallIsNotStartedAsTheHoursClose(t *testing.T) {
	st, _, q, insp := queueEnv(t)
	ctx := context.Background()
	clock := testenv.NewClock(time.Date(2026, 11, 29, 11, 59, 0, 0, time.UTC)) // 20:59 JST
	runner := &countingRunner{}
	h := &call.Handler{Calls: st, Runner: runner, Queue: q, Owner: "w1", Now: clock.Now}
	require.NoError(t, h.ProcessTask(ctx, task(t, tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: "oneoff-late-0001", Phone: "+81355550199", Instructions: "x",
	}})))
	require.Zero(t, runner.runs.Load())
	c, err := st.GetCall(ctx, "oneoff-late-0001")
	require.NoError(t, err)
	opening := time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC) // 08:00 JST the next day
	require.Equal(t, opening, c.WaitingUntil.UTC())
	require.Contains(t, c.WaitingReason, "the hours close within 2m0s")
	require.Contains(t, scheduledCalls(t, insp), "oneoff-late-0001@"+itoa(opening.Unix()))
}

// A number whose local time cannot be known is never called: the attempt
// is cancelled undialed, and its task archived with the reason.
func TestInlineCallWithoutAKnownZoneIsCancelled(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: "oneoff-nozone-01", Attempt: 1, Phone: "+15551234567",
		Instructions: "x"}))
	runner := &countingRunner{}
	h := &call.Handler{Calls: st, Runner: runner, Owner: "w1"} // no queue: nothing is scheduled
	err := h.ProcessTask(ctx, task(t, tasks.CallOutbound{AttemptID: "oneoff-nozone-01"}))
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "no time zone is known for this number")
	require.Zero(t, runner.runs.Load())
	c, err := st.GetCall(ctx, "oneoff-nozone-01")
	require.NoError(t, err)
	require.Equal(t, store.CallCancelled, c.Status)
	require.Contains(t, c.Error, "no time zone is known")
}

// The check right before dialing holds whatever path led there: a runner
// handed a claimed attempt for a number where it is night now (no handler,
// no dial check) ends it cancelled and never dials. It reads the wall
// clock, so the test uses a number where it is night now.
func TestRunnerNeverDialsOutsideCallingHours(t *testing.T) {
	e := newCallEnv(t, scenario{})
	ctx := testCtx(t)
	require.NoError(t, e.st.CreateAttempt(ctx, &store.Call{ID: e.id, Attempt: 1, Phone: testenv.NighttimeNumber(t),
		Instructions: instructions, Variables: map[string]string{"practice_name": "Elm Dental"}}))
	claim, err := e.st.ClaimAttempt(ctx, e.id, "test-worker", time.Minute)
	require.NoError(t, err)
	doc, err := e.st.GetCall(ctx, e.id)
	require.NoError(t, err)
	require.NoError(t, e.runner.Run(ctx, claim, doc))

	c := e.doc(t)
	require.Equal(t, store.CallCancelled, c.Status)
	require.Contains(t, c.Error, "not dialed: outside calling hours (08:00–21:00 where the callee is)")
	require.Empty(t, e.dialer.Requests(), "nothing dialed")
}
