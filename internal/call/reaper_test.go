package call_test

import (
	"context"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A worker that dies mid-call stops renewing its lease; the reaper settles
// the attempt as interrupted (never redialled), and a second pass does
// nothing more.
func TestReaperSettlesLapsedCalls(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: "attempt-reap-001", Attempt: 1, Phone: "+15551234567"}))
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: "attempt-live-001", Attempt: 1, Phone: "+15557654321"}))
	_, err := st.ClaimAttempt(ctx, "attempt-reap-001", "dead-worker", time.Second)
	require.NoError(t, err)
	_, err = st.ClaimAttempt(ctx, "attempt-live-001", "live-worker", time.Hour)
	require.NoError(t, err)

	core, logs := observer.New(zapcore.DebugLevel)
	later := func(ctx context.Context, _ time.Time, limit int) ([]string, error) {
		return st.ReapExpired(ctx, time.Now().Add(time.Minute), limit) // the dead worker's lease has lapsed
	}
	r := call.NewReaper(later, time.Hour, zap.New(core))
	r.Pass(ctx)
	r.Pass(ctx)

	c, err := st.GetCall(ctx, "attempt-reap-001")
	require.NoError(t, err)
	require.Equal(t, store.CallInterrupted, c.Status)
	live, err := st.GetCall(ctx, "attempt-live-001")
	require.NoError(t, err)
	require.Equal(t, store.CallDialing, live.Status, "a call whose owner renews is left alone")
	require.Equal(t, 1, logs.FilterMessage("call.reaped").Len())

	// Start/Shutdown own the goroutine.
	r.Start()
	r.Shutdown()
}
