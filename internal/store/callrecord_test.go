package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// EndCall writes the terminal status with everything the call kept, in one
// write, once: a second end, a stale fence or a live status are refused.
func TestEndCallWritesStatusAndDetailsTogether(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)
	callback := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	require.NoError(t, s.RecordCallDetails(ctx, c, CallDetails{Disposition: "callback_requested", CallbackAt: callback}))

	require.ErrorIs(t, s.EndCall(ctx, c, CallInProgress, CallFields{}, CallDetails{}), ErrInvalidTransition)
	stale := c
	stale.Fence = "not-the-fence"
	require.ErrorIs(t, s.EndCall(ctx, stale, CallCompleted, CallFields{}, CallDetails{EndReason: "x"}), ErrFenceMismatch)

	require.NoError(t, s.EndCall(ctx, c, CallCompleted, CallFields{Outcome: "opted_out", LatenciesMS: []int{12, 30}},
		CallDetails{EndReason: "the callee opted out", OptedOut: true,
			Interruptions: []Interruption{{Cause: "callee", AtMS: 1500, ItemID: "item_1", PlayedMS: 640, DroppedMS: 3000}}}))
	got := getCall(t, s, c.AttemptID)
	require.Equal(t, CallCompleted, got.Status)
	require.False(t, got.EndedAt.IsZero())
	require.Equal(t, "opted_out", got.Outcome)
	require.Equal(t, []int{12, 30}, got.LatenciesMS)
	d, err := s.GetCallDetails(ctx, c.AttemptID)
	require.NoError(t, err)
	require.Equal(t, "the callee opted out", d.EndReason)
	require.True(t, d.OptedOut)
	require.Equal(t, "callback_requested", d.Disposition, "details recorded during the call stay")
	require.True(t, callback.Equal(d.CallbackAt))
	require.Equal(t, 640, d.Interruptions[0].PlayedMS)

	require.ErrorIs(t, s.EndCall(ctx, c, CallFailed, CallFields{}, CallDetails{EndReason: "again"}), ErrFenceMismatch,
		"an ended call never ends twice")
	require.ErrorIs(t, s.RecordCallDetails(ctx, c, CallDetails{Disposition: "other"}), ErrFenceMismatch)
	_, err = s.GetCallDetails(ctx, "no-such-attempt")
	require.ErrorIs(t, err, ErrNotFound)
}
