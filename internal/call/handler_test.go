package call_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

func openStore(t testing.TB) *store.Store { return openStoreWithPool(t, 0) }

// openStoreWithPool is openStore with a pool of at most pool connections
// (0: the driver's default).
func openStoreWithPool(t testing.TB, pool uint64) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{URI: testenv.MongoURI(t), Database: testenv.UniqueName(t), MaxPoolSize: pool})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = st.DB().Drop(context.Background())
		_ = st.Close(context.Background())
	})
	require.NoError(t, st.EnsureIndexes(ctx))
	return st
}

// countingRunner stands in for the conversation: what is under test here
// is how many times a claimed attempt reaches it.
type countingRunner struct {
	runs   atomic.Int32
	claims sync.Map
}

func (r *countingRunner) Run(_ context.Context, c store.Claim, _ *store.Call) error {
	r.runs.Add(1)
	r.claims.Store(c.Fence, c.Owner)
	return nil
}

func task(t testing.TB, p tasks.Payload) *asynq.Task {
	t.Helper()
	tk, err := tasks.New(p)
	require.NoError(t, err)
	return tk
}

func TestDuplicateDeliveryLeadsToOneClaim(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: "attempt-dup-0001", Attempt: 1, Phone: testenv.DaytimeNumber(t)}))
	runner := &countingRunner{}
	tk := task(t, tasks.CallOutbound{AttemptID: "attempt-dup-0001"})

	// The same task delivered to several workers at once, then again later.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		h := &call.Handler{Calls: st, Runner: runner, Owner: "worker-" + string(rune('a'+i))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- h.ProcessTask(ctx, tk)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "a lost claim is not an error: the task must not be retried")
	}
	again := &call.Handler{Calls: st, Runner: runner, Owner: "late"}
	require.NoError(t, again.ProcessTask(ctx, tk))

	require.Equal(t, int32(1), runner.runs.Load())
	c, err := st.GetCall(ctx, "attempt-dup-0001")
	require.NoError(t, err)
	require.Equal(t, store.CallDialing, c.Status)
	require.Equal(t, 1, c.Claims)
}

func TestInlineCallCreatesAttemptOnce(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	runner := &countingRunner{}
	h := &call.Handler{Calls: st, Runner: runner, Owner: "w1", Now: func() time.Time { return time.Unix(1_800_000_000, 0) }}
	tk := task(t, tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: "oneoff-0001", Phone: "+81355550199", Instructions: "Confirm the appointment.", // 17:00 in Tokyo
		Variables: map[string]string{"practice_name": "Elm Dental"},
	}})
	require.NoError(t, h.ProcessTask(ctx, tk))
	require.NoError(t, h.ProcessTask(ctx, tk)) // duplicate delivery
	require.Equal(t, int32(1), runner.runs.Load())
	c, err := st.GetCall(ctx, "oneoff-0001")
	require.NoError(t, err)
	require.Equal(t, "+81355550199", c.Phone)
	require.Equal(t, "Elm Dental", c.Variables["practice_name"])
}

func TestInvalidAndUnknownAttemptsAreRejected(t *testing.T) {
	st := openStore(t)
	h := &call.Handler{Calls: st, Runner: &countingRunner{}, Owner: "w1"}
	err := h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeCallOutbound, []byte(`{"attempt_id":""}`)))
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorContains(t, err, "attempt_id")

	err = h.ProcessTask(context.Background(), task(t, tasks.CallOutbound{AttemptID: "no-such-attempt"}))
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestNoRunnerLeavesAttemptUnclaimed(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: "attempt-norun-01", Attempt: 1, Phone: "+15551234567"}))
	h := &call.Handler{Calls: st, Owner: "w1"}
	err := h.ProcessTask(ctx, task(t, tasks.CallOutbound{AttemptID: "attempt-norun-01"}))
	require.True(t, errors.Is(err, call.ErrNoRunner))
	require.False(t, errors.Is(err, asynq.SkipRetry), "retried later, never archived for this")
	c, err := st.GetCall(ctx, "attempt-norun-01")
	require.NoError(t, err)
	require.Equal(t, store.CallQueued, c.Status)
}
