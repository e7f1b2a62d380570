package store

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The partial-recording note is written by the claim's owner only, and
// the state at hang-up replaces it once the final object exists.
func TestPartialRecordingIsFenced(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)

	p := PartialRecording{Bucket: "b", Prefix: "recordings-partial/x/", Segments: 2, DurationMS: 60000, Bytes: 1234, FinalKey: "recordings/x.ogg"}
	require.NoError(t, s.RecordPartialRecording(ctx, c, p))
	got, err := s.GetPartialRecording(ctx, c.AttemptID)
	require.NoError(t, err)
	require.Equal(t, &p, got)

	stale := c
	stale.Fence = "not-the-fence"
	require.ErrorIs(t, s.RecordPartialRecording(ctx, stale, PartialRecording{Segments: 9}), ErrFenceMismatch)
	require.ErrorIs(t, s.RecordRecordingState(ctx, stale, RecordingState{Status: RecordingComplete}), ErrFenceMismatch)

	rec := &Recording{Bucket: "b", Key: "recordings/x.ogg", Bytes: 99, DurationMS: 61000, Format: "ogg/opus", SHA256: "ab"}
	require.NoError(t, s.RecordRecordingState(ctx, c, RecordingState{Status: RecordingComplete, Recording: rec}))
	got, err = s.GetPartialRecording(ctx, c.AttemptID)
	require.NoError(t, err)
	require.Nil(t, got)
	call := getCall(t, s, c.AttemptID)
	require.Equal(t, RecordingComplete, call.RecordingStatus)
	require.Equal(t, rec, call.Recording)
}

// A recording settled after the call ended can only touch the recording
// fields of an ended call: it is refused while the call is live, and it
// never moves the status.
func TestSettleRecordingOnlyTouchesAnEndedCallsRecording(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)
	p := &PartialRecording{Bucket: "b", Prefix: "recordings-partial/y/", Segments: 3, DurationMS: 90000, FinalKey: "recordings/y.ogg"}
	pending := RecordingState{Status: RecordingPendingUpload, Partial: p, Error: "storage away",
		Pending: &RecordingPending{Owner: "w/1", LeaseUntil: time.Now().Add(time.Minute).UTC().Truncate(time.Millisecond), DurationMS: 95000}}

	require.ErrorIs(t, s.SettleRecording(ctx, c.AttemptID, pending), ErrCallNotEnded)
	require.ErrorIs(t, s.NotePendingRecording(ctx, c.AttemptID, pending), ErrCallNotEnded)
	require.NoError(t, s.RecordRecordingState(ctx, c, pending))
	require.NoError(t, s.EndCall(ctx, c, EndRecord{Status: CallCompleted, At: time.Now(), Details: CallDetails{EndReason: "callee hung up", RecordingError: "pending"}}))

	require.NoError(t, s.NotePendingRecording(ctx, c.AttemptID, pending))
	call := getCall(t, s, c.AttemptID)
	require.Equal(t, CallCompleted, call.Status)
	require.Equal(t, RecordingPendingUpload, call.RecordingStatus)
	require.Equal(t, pending.Pending, call.RecordingPending)
	require.Equal(t, p, call.RecordingPartial)

	rec := &Recording{Bucket: "b", Key: "recordings/y.ogg", Bytes: 99, DurationMS: 95000, Format: "ogg/opus", SHA256: "cd"}
	require.NoError(t, s.SettleRecording(ctx, c.AttemptID, RecordingState{Status: RecordingComplete, Recording: rec}))
	call = getCall(t, s, c.AttemptID)
	require.Equal(t, CallCompleted, call.Status, "the terminal status stays")
	require.Equal(t, "callee hung up", mustDoc(t, s, c.AttemptID)["end_reason"])
	require.Equal(t, RecordingComplete, call.RecordingStatus)
	require.Equal(t, rec, call.Recording)
	require.Nil(t, call.RecordingPartial)
	require.Nil(t, call.RecordingPending)
	require.Empty(t, call.RecordingError)

	// A renewal that comes after the settle changes nothing.
	require.NoError(t, s.NotePendingRecording(ctx, c.AttemptID, pending))
	require.Equal(t, RecordingComplete, getCall(t, s, c.AttemptID).RecordingStatus)

	_, err := s.GetCall(ctx, "no-such-call")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, s.SettleRecording(ctx, "no-such-call", pending), ErrNotFound)
}

func mustDoc(t *testing.T, s *Store, id string) map[string]any {
	t.Helper()
	doc, err := s.GetCallDocument(t.Context(), id)
	require.NoError(t, err)
	return doc
}

// Orphans are ended calls whose recording needs a new owner: pending with
// a lapsed lease, or still in segments past the grace. Live calls, live
// leases, recent ends and settled recordings are left alone.
func TestOrphanRecordings(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	const grace = time.Minute
	seg := func(n string) *PartialRecording {
		return &PartialRecording{Bucket: "b", Prefix: "recordings-partial/" + n + "/", Segments: 1, DurationMS: 30000, FinalKey: "recordings/" + n + ".ogg"}
	}
	ended := func(st RecordingState, endedAgo time.Duration) string {
		c := claimed(t, s, time.Minute)
		s.SetClock(func() time.Time { return now.Add(-endedAgo) })
		require.NoError(t, s.RecordRecordingState(ctx, c, st))
		require.NoError(t, s.EndCall(ctx, c, EndRecord{Status: CallInterrupted, At: now.Add(-endedAgo)}))
		s.SetClock(time.Now)
		return c.AttemptID
	}
	lapsed := ended(RecordingState{Status: RecordingPendingUpload, Partial: seg("a"),
		Pending: &RecordingPending{Owner: "dead/1", LeaseUntil: now.Add(-time.Second), DurationMS: 40000}}, time.Second)
	killed := ended(RecordingState{Partial: seg("b")}, 2*grace)
	reported := ended(RecordingState{Status: RecordingPartial, Partial: seg("c"), LostMS: 5000, Error: "worker stopped"}, 2*grace)
	ended(RecordingState{Status: RecordingPendingUpload, Partial: seg("d"),
		Pending: &RecordingPending{Owner: "alive/1", LeaseUntil: now.Add(time.Minute)}}, time.Second)
	ended(RecordingState{Partial: seg("e")}, time.Second) // within the grace
	ended(RecordingState{Status: RecordingComplete, Recording: &Recording{Key: "recordings/f.ogg"}}, 2*grace)
	live := claimed(t, s, time.Minute)
	require.NoError(t, s.RecordPartialRecording(ctx, live, *seg("g")))

	got, err := s.OrphanRecordings(ctx, now, grace, 10)
	require.NoError(t, err)
	byID := map[string]OrphanRecording{}
	for _, o := range got {
		byID[o.AttemptID] = o
	}
	require.Len(t, byID, 3, "%v", got)
	require.Equal(t, int64(40000), byID[lapsed].Pending.DurationMS)
	require.Equal(t, "recordings-partial/b/", byID[killed].Partial.Prefix)
	require.Nil(t, byID[killed].Pending)
	require.Equal(t, int64(5000), byID[reported].LostMS)
	require.Equal(t, "worker stopped", byID[reported].Error)
}

// Of many workers electing a joiner for one recording in one epoch,
// exactly one wins; the next epoch has its own election.
func TestElectRecordingJoinHasOneWinner(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	var wins sync.Map
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			won, err := s.ElectRecordingJoin(ctx, "att-1", 7, "w")
			require.NoError(t, err)
			if won {
				wins.Store(i, true)
			}
		})
	}
	wg.Wait()
	n := 0
	wins.Range(func(any, any) bool { n++; return true })
	require.Equal(t, 1, n)
	won, err := s.ElectRecordingJoin(ctx, "att-1", 8, "w")
	require.NoError(t, err)
	require.True(t, won)
}
