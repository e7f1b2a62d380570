package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// queuedAttempt creates a queued campaign attempt and returns its id.
func queuedAttempt(t *testing.T, s *Store) string {
	t.Helper()
	id := "att-" + bson.NewObjectID().Hex()
	require.NoError(t, s.CreateAttempt(t.Context(), &Call{
		ID: id, CampaignID: bson.NewObjectID(), ContactID: bson.NewObjectID(), Attempt: 1,
	}))
	return id
}

// claimed creates an attempt and claims it.
func claimed(t *testing.T, s *Store, lease time.Duration) Claim {
	t.Helper()
	c, err := s.ClaimAttempt(t.Context(), queuedAttempt(t, s), "worker-1", lease)
	require.NoError(t, err)
	return c
}

func getCall(t *testing.T, s *Store, id string) *Call {
	t.Helper()
	c, err := s.GetCall(t.Context(), id)
	require.NoError(t, err)
	return c
}

func TestCreateAttempt(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()

	inline := &Call{ID: "inline-1", Phone: "+14155550100", Instructions: "Confirm the appointment.",
		Variables: map[string]string{"name": "Dr. Who"}}
	require.NoError(t, s.CreateAttempt(ctx, inline))
	got := getCall(t, s, "inline-1")
	require.Equal(t, CallQueued, got.Status)
	require.False(t, got.QueuedAt.IsZero())
	require.Equal(t, inline.QueuedAt, got.QueuedAt)
	require.Equal(t, "Dr. Who", got.Variables["name"])
	require.Zero(t, got.Claims)

	// An inline call has no campaign: the field is absent, not a zero id,
	// so campaign queries and indexes never see it.
	raw, err := s.calls.FindOne(ctx, bson.D{{Key: "_id", Value: "inline-1"}}).Raw()
	require.NoError(t, err)
	_, err = raw.LookupErr("campaign_id")
	require.Error(t, err, "campaign_id must be omitted for an inline call")

	err = s.CreateAttempt(ctx, &Call{ID: "inline-1", Phone: "+14155550100"})
	require.ErrorIs(t, err, ErrDuplicate)

	for name, bad := range map[string]*Call{
		"Call.ID":        {Phone: "+14155550100"},
		"Call.Status":    {ID: "x1", Phone: "+14155550100", Status: CallDialing},
		"Fence":          {ID: "x2", Phone: "+14155550100", Fence: "f"},
		"Call.ContactID": {ID: "x3"},
		"E.164":          {ID: "x4", Phone: "4155550100"},
	} {
		require.ErrorContains(t, s.CreateAttempt(ctx, bad), name)
	}
	_, err = s.GetCall(ctx, "x1")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestClaimRaceHasExactlyOneWinner(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	const claimers = 50
	// Several rounds, because one lucky interleaving proves little.
	for round := range 3 {
		id := queuedAttempt(t, s)
		claims := make([]Claim, claimers)
		errs := collectErrors(claimers, func(i int) error {
			var err error
			claims[i], err = s.ClaimAttempt(t.Context(), id, fmt.Sprintf("worker-%d", i), time.Minute)
			return err
		})

		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "round %d: claimers %d and %d both won", round, winner, i)
				winner = i
				continue
			}
			require.ErrorIs(t, err, ErrClaimLost, "round %d claimer %d", round, i)
		}
		require.NotEqual(t, -1, winner, "round %d: nobody won", round)

		got := getCall(t, s, id)
		require.Equal(t, CallDialing, got.Status)
		require.Equal(t, claims[winner].Owner, got.Owner)
		require.Equal(t, claims[winner].Fence, got.Fence)
		require.Len(t, got.Fence, 32, "128-bit hex fence")
		require.Equal(t, 1, got.Claims)
		require.Equal(t, claims[winner].LeaseExpiresAt, got.LeaseExpiresAt)
		require.False(t, got.DialingAt.IsZero())
	}
}

func TestClaimOnlyOnce(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()

	_, err := s.ClaimAttempt(ctx, "no-such-attempt", "w", time.Minute)
	require.ErrorIs(t, err, ErrNotFound)

	c := claimed(t, s, time.Minute)
	_, err = s.ClaimAttempt(ctx, c.AttemptID, "worker-2", time.Minute)
	require.ErrorIs(t, err, ErrClaimLost)
	require.NotErrorIs(t, err, ErrClaimPending, "the attempt has started: nothing to wait for")

	require.NoError(t, s.Transition(ctx, c, CallCompleted, CallFields{}))
	_, err = s.ClaimAttempt(ctx, c.AttemptID, "worker-2", time.Minute)
	require.ErrorIs(t, err, ErrClaimLost)

	got := getCall(t, s, c.AttemptID)
	require.Equal(t, c.Fence, got.Fence)
	require.Equal(t, 1, got.Claims)

	for _, bad := range []struct {
		id, owner string
		lease     time.Duration
	}{{"", "w", time.Minute}, {"a", "", time.Minute}, {"a", "w", 0}} {
		_, err := s.ClaimAttempt(ctx, bad.id, bad.owner, bad.lease)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrClaimLost)
	}
}

func TestTransitionsRecordTheCall(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)

	require.NoError(t, s.Transition(ctx, c, CallRinging, CallFields{Room: "room-1", SIPCallID: "sip-1"}))
	require.NoError(t, s.Transition(ctx, c, CallInProgress, CallFields{}))
	require.NoError(t, s.AppendTurns(ctx, c, Turn{Role: "agent", Text: "Hello", StartMS: 0, EndMS: 900}))
	require.NoError(t, s.AppendTurns(ctx, c, Turn{Role: "callee", Text: "Hi", StartMS: 1000, EndMS: 1400}))
	require.NoError(t, s.AppendToolCall(ctx, c, ToolCall{Name: "end_call", Arguments: `{"reason":"done"}`, At: time.Now()}))
	require.NoError(t, s.ExtendLease(ctx, c, time.Hour))
	rec := &Recording{Bucket: "b", Key: "calls/1.ogg", Bytes: 1234, DurationMS: 5000, Format: "ogg", SHA256: "ab"}
	require.NoError(t, s.Transition(ctx, c, CallCompleted, CallFields{
		Outcome: "confirmed", Recording: rec, LatenciesMS: []int{420, 380},
		Usage: &Usage{InputTokens: 10, OutputTokens: 20},
	}))

	got := getCall(t, s, c.AttemptID)
	require.Equal(t, CallCompleted, got.Status)
	require.Equal(t, "room-1", got.Room, "fields from earlier steps are kept")
	require.Equal(t, "sip-1", got.SIPCallID)
	require.Equal(t, "confirmed", got.Outcome)
	require.Equal(t, rec, got.Recording)
	require.Equal(t, []int{420, 380}, got.LatenciesMS)
	require.Equal(t, 20, got.Usage.OutputTokens)
	require.Equal(t, []Turn{
		{Role: "agent", Text: "Hello", StartMS: 0, EndMS: 900},
		{Role: "callee", Text: "Hi", StartMS: 1000, EndMS: 1400},
	}, got.Transcript)
	require.Len(t, got.ToolCalls, 1)
	require.Equal(t, "end_call", got.ToolCalls[0].Name)
	for name, ts := range map[string]time.Time{
		"dialing_at": got.DialingAt, "ringing_at": got.RingingAt, "answered_at": got.AnsweredAt, "ended_at": got.EndedAt,
	} {
		require.False(t, ts.IsZero(), name)
	}
	require.False(t, got.EndedAt.Before(got.AnsweredAt))
	require.False(t, got.AnsweredAt.Before(got.RingingAt))
	require.True(t, got.LeaseExpiresAt.After(c.LeaseExpiresAt), "lease was extended")
}

func TestStaleFenceChangesNothing(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)
	before := getCall(t, s, c.AttemptID)

	stale := c
	stale.Fence, _ = newFence()
	require.ErrorIs(t, s.Transition(ctx, stale, CallRinging, CallFields{Room: "evil"}), ErrFenceMismatch)
	require.ErrorIs(t, s.Transition(ctx, stale, CallFailed, CallFields{Error: "evil"}), ErrFenceMismatch)
	require.ErrorIs(t, s.AppendTurns(ctx, stale, Turn{Role: "agent", Text: "evil"}), ErrFenceMismatch)
	require.ErrorIs(t, s.AppendToolCall(ctx, stale, ToolCall{Name: "evil"}), ErrFenceMismatch)
	require.ErrorIs(t, s.ExtendLease(ctx, stale, time.Hour), ErrFenceMismatch)

	require.Equal(t, before, getCall(t, s, c.AttemptID))

	missing := stale
	missing.AttemptID = "no-such-attempt"
	require.ErrorIs(t, s.Transition(ctx, missing, CallRinging, CallFields{}), ErrNotFound)
}

func TestTerminalAttemptCannotMove(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)
	require.NoError(t, s.Transition(ctx, c, CallNoAnswer, CallFields{Outcome: "no_answer"}))
	before := getCall(t, s, c.AttemptID)

	require.ErrorIs(t, s.Transition(ctx, c, CallCompleted, CallFields{Outcome: "late"}), ErrFenceMismatch)
	require.ErrorIs(t, s.Transition(ctx, c, CallInProgress, CallFields{}), ErrFenceMismatch)
	require.ErrorIs(t, s.AppendTurns(ctx, c, Turn{Role: "agent", Text: "late"}), ErrFenceMismatch)
	require.ErrorIs(t, s.ExtendLease(ctx, c, time.Hour), ErrFenceMismatch)

	require.Equal(t, before, getCall(t, s, c.AttemptID))
}

func TestStatusOnlyMovesForward(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)
	require.NoError(t, s.Transition(ctx, c, CallInProgress, CallFields{}), "ringing may be skipped")

	require.ErrorIs(t, s.Transition(ctx, c, CallRinging, CallFields{}), ErrInvalidTransition)
	require.ErrorIs(t, s.Transition(ctx, c, CallInProgress, CallFields{}), ErrInvalidTransition)
	require.ErrorIs(t, s.Transition(ctx, c, CallQueued, CallFields{}), ErrInvalidTransition)
	require.ErrorIs(t, s.Transition(ctx, c, CallDialing, CallFields{}), ErrInvalidTransition)
	require.ErrorIs(t, s.Transition(ctx, c, CallStatus("bogus"), CallFields{}), ErrInvalidTransition)
	require.Equal(t, CallInProgress, getCall(t, s, c.AttemptID).Status)
}

// On FerretDB an update is read-modify-write, so without the store's
// per-attempt lock concurrent writers to one call lose turns, and a lease
// extension landing after the final transition puts the status back.
func TestOwnerWritesFromManyGoroutinesAreAllKept(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)
	require.NoError(t, s.Transition(ctx, c, CallInProgress, CallFields{}))

	const turns = 20
	errs := collectErrors(2*turns, func(i int) error {
		if i%2 == 0 {
			return s.AppendTurns(ctx, c, Turn{Role: "callee", Text: fmt.Sprint("turn ", i/2)})
		}
		return s.ExtendLease(ctx, c, time.Minute)
	})
	for _, err := range errs {
		require.NoError(t, err)
	}

	errs = collectErrors(11, func(i int) error {
		if i == 0 {
			return s.Transition(ctx, c, CallCompleted, CallFields{Outcome: "done"})
		}
		return s.ExtendLease(ctx, c, time.Minute)
	})
	require.NoError(t, errs[0])
	for _, err := range errs[1:] {
		if err != nil {
			require.ErrorIs(t, err, ErrFenceMismatch, "an extension after the end is refused")
		}
	}

	got := getCall(t, s, c.AttemptID)
	require.Equal(t, CallCompleted, got.Status)
	require.Equal(t, "done", got.Outcome)
	texts := map[string]bool{}
	for _, tr := range got.Transcript {
		texts[tr.Text] = true
	}
	require.Len(t, texts, turns, "every appended turn is kept")
}

func TestSaveAnalysis(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)
	a := Analysis{Outcome: "confirmed", Summary: "Booked for Tuesday.", Extracted: map[string]any{"day": "tuesday", "slots": int32(2)}}

	require.ErrorIs(t, s.SaveAnalysis(ctx, c.AttemptID, a), ErrInvalidTransition, "the call is still live")
	require.ErrorIs(t, s.SaveAnalysis(ctx, "no-such-attempt", a), ErrNotFound)
	require.Error(t, s.SaveAnalysis(ctx, c.AttemptID, Analysis{}))

	require.NoError(t, s.Transition(ctx, c, CallCompleted, CallFields{Outcome: "answered"}))
	require.NoError(t, s.SaveAnalysis(ctx, c.AttemptID, a))
	require.NoError(t, s.SaveAnalysis(ctx, c.AttemptID, a), "a retried analysis is fine")

	got := getCall(t, s, c.AttemptID)
	require.Equal(t, CallCompleted, got.Status)
	require.Equal(t, "confirmed", got.Outcome)
	require.Equal(t, "Booked for Tuesday.", got.Summary)
	require.Equal(t, "tuesday", got.Extracted["day"])
	require.EqualValues(t, 2, got.Extracted["slots"])
}

func TestReapExpiredInterruptsLapsedLeases(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	lapsing := claimed(t, s, time.Minute)
	require.NoError(t, s.Transition(ctx, lapsing, CallInProgress, CallFields{}))
	healthy := claimed(t, s, time.Hour)
	done := claimed(t, s, time.Minute)
	require.NoError(t, s.Transition(ctx, done, CallCompleted, CallFields{}))
	waiting := queuedAttempt(t, s)

	later := time.Now().Add(2 * time.Minute)
	reaped, err := s.ReapExpired(ctx, later, 100)
	require.NoError(t, err)
	require.Equal(t, []Reaped{{AttemptID: lapsing.AttemptID, Status: CallInterrupted}}, reaped)

	got := getCall(t, s, lapsing.AttemptID)
	require.Equal(t, CallInterrupted, got.Status)
	require.Contains(t, got.Error, "worker-1")
	require.False(t, got.EndedAt.IsZero())
	require.ErrorIs(t, s.Transition(ctx, lapsing, CallCompleted, CallFields{}), ErrFenceMismatch,
		"the late owner learns it lost the attempt")

	require.Equal(t, CallDialing, getCall(t, s, healthy.AttemptID).Status)
	require.Equal(t, CallCompleted, getCall(t, s, done.AttemptID).Status)
	require.Equal(t, CallQueued, getCall(t, s, waiting).Status)

	reaped, err = s.ReapExpired(ctx, later, 100)
	require.NoError(t, err)
	require.Empty(t, reaped)

	_, err = s.ReapExpired(ctx, later, 0)
	require.Error(t, err)
}

// clockedStore is a test store whose clock stands at the returned time
// until the test moves it (s.now).
func clockedStore(t *testing.T) (*Store, time.Time) {
	s, base := newTestStore(t), time.Now()
	s.now = func() time.Time { return base }
	return s, base
}

// halfClaimed leaves a queued attempt under owner's claim, leased for a
// minute from s's clock, as an owner leaves it whose start never reached
// the call document. It returns the attempt id and the claim's fence.
func halfClaimed(t *testing.T, s *Store, owner string) (string, string) {
	t.Helper()
	id := queuedAttempt(t, s)
	fence, err := newFence()
	require.NoError(t, err)
	_, err = s.claims.InsertOne(t.Context(), claimRecord{
		ID: id, Owner: owner, Fence: fence, ClaimedAt: s.clock(), LeaseExpiresAt: s.clock().Add(time.Minute),
	})
	require.NoError(t, err)
	return id, fence
}

// An owner whose first claim won the ledger but failed to start the
// attempt (the write timed out) resumes it when it tries again inside the
// lease, under the same fence; another owner still may not, and after the
// lease it is too late: the attempt is settled unstarted.
func TestOwnUnstartedClaimResumesInsideItsLease(t *testing.T) {
	t.Parallel()
	s, base := clockedStore(t)
	ctx := t.Context()
	resumed, fence := halfClaimed(t, s, "worker-1")
	_, err := s.ClaimAttempt(ctx, resumed, "worker-2", time.Minute)
	require.ErrorIs(t, err, ErrClaimPending, "another owner waits")
	s.now = func() time.Time { return base.Add(30 * time.Second) }
	c, err := s.ClaimAttempt(ctx, resumed, "worker-1", time.Minute)
	require.NoError(t, err, "the owner resumes its own claim")
	require.Equal(t, fence, c.Fence, "under the ledger's fence")
	require.WithinDuration(t, base.Add(90*time.Second), c.LeaseExpiresAt, time.Millisecond, "with a fresh lease")
	got := getCall(t, s, resumed)
	require.Equal(t, CallDialing, got.Status)
	require.Equal(t, "worker-1", got.Owner)
	require.Equal(t, 1, got.Claims)
	_, err = s.ClaimAttempt(ctx, resumed, "worker-1", time.Minute)
	require.ErrorIs(t, err, ErrClaimLost, "once started, a duplicate delivery to the same owner does not start it again")

	late, _ := halfClaimed(t, s, "worker-1")
	s.now = func() time.Time { return base.Add(2 * time.Minute) }
	_, err = s.ClaimAttempt(ctx, late, "worker-1", time.Minute)
	require.ErrorIs(t, err, ErrClaimSettled, "past the lease a reaper may be settling it: not resumed")
	require.Equal(t, CallCancelled, getCall(t, s, late).Status)
}

// A claimer that dies between winning the ledger and starting the attempt
// leaves it queued; it must end as cancelled (it was never dialed, so it
// does not count against the contact), never be claimed again.
func TestUnstartedClaimIsSettledNotRedialed(t *testing.T) {
	t.Parallel()
	s, base := clockedStore(t)
	ctx := t.Context()
	viaClaim, _ := halfClaimed(t, s, "dead-worker")
	viaReaper, _ := halfClaimed(t, s, "dead-worker")

	_, err := s.ClaimAttempt(ctx, viaClaim, "worker-2", time.Minute)
	require.ErrorIs(t, err, ErrClaimPending, "inside the lease the winner may still be starting")
	require.ErrorIs(t, err, ErrClaimLost)
	require.Equal(t, CallQueued, getCall(t, s, viaClaim).Status)
	reaped, err := s.ReapExpired(ctx, base, 100)
	require.NoError(t, err)
	require.Empty(t, reaped)

	s.now = func() time.Time { return base.Add(2 * time.Minute) }
	_, err = s.ClaimAttempt(ctx, viaClaim, "worker-2", time.Minute)
	require.ErrorIs(t, err, ErrClaimLost)
	require.NotErrorIs(t, err, ErrClaimPending)
	require.ErrorIs(t, err, ErrClaimSettled, "the caller settled it, and must have its outcome applied")
	got := getCall(t, s, viaClaim)
	require.Equal(t, CallCancelled, got.Status)
	require.Contains(t, got.Error, "dead-worker")
	require.Zero(t, got.Claims)
	marks, err := s.ContactAttempts(ctx, got.ContactID)
	require.NoError(t, err)
	require.Equal(t, []AttemptMark{{Attempt: got.Attempt, Dialed: false}}, marks, "never dialed: not counted")

	reaped, err = s.ReapExpired(ctx, base.Add(2*time.Minute), 100)
	require.NoError(t, err)
	require.Equal(t, []Reaped{{AttemptID: viaReaper, Status: CallCancelled}}, reaped)
	require.Equal(t, CallCancelled, getCall(t, s, viaReaper).Status)

	_, err = s.ClaimAttempt(ctx, viaReaper, "worker-2", time.Minute)
	require.ErrorIs(t, err, ErrClaimLost)
	require.True(t, errors.Is(err, ErrClaimLost) && !errors.Is(err, ErrClaimPending))
}
