package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// EndCall writes the terminal status with everything the call kept, in one
// write, once: a second end, a stale fence or a live status are refused.
func TestEndCallWritesStatusAndDetailsTogether(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)
	callback := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	require.NoError(t, s.RecordCallDetails(ctx, c, CallDetails{Disposition: "callback_requested", CallbackAt: callback}))

	require.ErrorIs(t, s.EndCall(ctx, c, EndRecord{Status: CallInProgress, At: time.Now()}), ErrInvalidTransition)
	stale := c
	stale.Fence = "not-the-fence"
	require.ErrorIs(t, s.EndCall(ctx, stale, EndRecord{Status: CallCompleted, At: time.Now(), Details: CallDetails{EndReason: "x"}}), ErrFenceMismatch)

	require.NoError(t, s.EndCall(ctx, c, EndRecord{Status: CallCompleted, At: time.Now(),
		Fields: CallFields{Outcome: "opted_out", LatenciesMS: []int{12, 30}},
		Details: CallDetails{EndReason: "the callee opted out", OptedOut: true,
			Interruptions: []Interruption{{Cause: "callee", AtMS: 1500, ItemID: "item_1", PlayedMS: 640, DroppedMS: 3000}}}}))
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

	require.ErrorIs(t, s.EndCall(ctx, c, EndRecord{Status: CallFailed, At: time.Now(), Details: CallDetails{EndReason: "again"}}), ErrFenceMismatch,
		"an ended call never ends twice")
	require.ErrorIs(t, s.RecordCallDetails(ctx, c, CallDetails{Disposition: "other"}), ErrFenceMismatch)
	_, err = s.GetCallDetails(ctx, "no-such-attempt")
	require.ErrorIs(t, err, ErrNotFound)
}

// revertToInProgress does to the call document what a lease renewal that
// the driver gave up on does when FerretDB lands it after the terminal
// write: its read-modify-write puts back the whole document it read while
// the call was live.
func revertToInProgress(t *testing.T, s *Store, attemptID string) {
	t.Helper()
	_, err := s.calls.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: attemptID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: CallInProgress}}}})
	require.NoError(t, err)
}

// A call's end is never overwritten: once recorded, a late write that puts
// the call document back in progress is undone, by the next pass over
// recorded ends and by the reaper, never settled as interrupted.
func TestRecordedEndWinsOverALateWrite(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	end := EndRecord{Status: CallCompleted, At: time.Now(), Fields: CallFields{Outcome: "opted_out"},
		Details: CallDetails{EndReason: "callee hung up"}}

	// Repaired by the pass over recently recorded ends.
	a := claimed(t, s, time.Minute)
	require.NoError(t, s.Transition(ctx, a, CallInProgress, CallFields{}))
	require.NoError(t, s.EndCall(ctx, a, end))
	revertToInProgress(t, s, a.AttemptID)
	applied, err := s.ApplyRecordedEnds(ctx, time.Now().Add(-time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, []string{a.AttemptID}, applied)
	got := getCall(t, s, a.AttemptID)
	require.Equal(t, CallCompleted, got.Status)
	require.Equal(t, "opted_out", got.Outcome)
	applied, err = s.ApplyRecordedEnds(ctx, time.Now().Add(-time.Hour), 100)
	require.NoError(t, err)
	require.Empty(t, applied, "nothing left to repair")

	// Repaired by the reaper once the lease lapses, instead of interrupted.
	b := claimed(t, s, time.Minute)
	require.NoError(t, s.Transition(ctx, b, CallInProgress, CallFields{}))
	require.NoError(t, s.EndCall(ctx, b, end))
	revertToInProgress(t, s, b.AttemptID)
	reaped, err := s.ReapExpired(ctx, time.Now().Add(2*time.Minute), 100)
	require.NoError(t, err)
	require.Equal(t, []Reaped{{AttemptID: b.AttemptID, Status: CallCompleted, Recorded: true}}, reaped)
	got = getCall(t, s, b.AttemptID)
	require.Equal(t, CallCompleted, got.Status)
	d, err := s.GetCallDetails(ctx, b.AttemptID)
	require.NoError(t, err)
	require.Equal(t, "callee hung up", d.EndReason)

	// An end recorded but never written (the call document's write
	// failed) reaches the call document the same way.
	c := claimed(t, s, time.Minute)
	require.NoError(t, s.RecordEnd(ctx, c, end))
	require.Equal(t, CallDialing, getCall(t, s, c.AttemptID).Status)
	applied, err = s.ApplyRecordedEnds(ctx, time.Now().Add(-time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, []string{c.AttemptID}, applied)
	require.Equal(t, CallCompleted, getCall(t, s, c.AttemptID).Status)

	// Only the claim's owner records an end.
	stale := c
	stale.Fence = "not-the-fence"
	require.ErrorIs(t, s.RecordEnd(ctx, stale, end), ErrFenceMismatch)
}
