package campaign

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestEachOutcomeMovesTheContact(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil) // default policy: 3 attempts; no_answer, busy, failed retried
	for i, tc := range []struct {
		status  store.CallStatus
		outcome Outcome
		want    store.ContactStatus
		next    time.Duration // after the call ended; 0 when final
	}{
		{store.CallCompleted, OutcomeCompleted, store.ContactCompleted, 0},
		{store.CallNoAnswer, OutcomeNoAnswer, store.ContactPending, 30 * time.Minute},
		{store.CallBusy, OutcomeBusy, store.ContactPending, 30 * time.Minute},
		{store.CallFailed, OutcomeFailed, store.ContactPending, 30 * time.Minute},
		{store.CallVoicemail, OutcomeVoicemail, store.ContactExhausted, 0},
		{store.CallInterrupted, OutcomeInterrupted, store.ContactExhausted, 0},
		{store.CallCompleted, OutcomeOptedOut, store.ContactDoNotCall, 0},
	} {
		ct := e.contacts(c.ID, store.Contact{Phone: fmt.Sprintf("+121255501%02d", i)})[0]
		e.roundAt(c.ID, tuesday.Add(time.Duration(i)*time.Minute))
		ended := e.clock.Now()
		res := e.finish(AttemptID(ct.ID, 1), tc.status, tc.outcome, time.Time{})
		require.True(t, res.Applied, tc.outcome)
		require.Equal(t, tc.want, res.Status, tc.outcome)
		got := e.contact(ct.ID)
		require.Equal(t, tc.want, got.Status, tc.outcome)
		require.Equal(t, string(tc.outcome), got.LastOutcome)
		require.Equal(t, 1, got.Attempts)
		if tc.next == 0 {
			require.True(t, got.NextAttemptAt.IsZero(), tc.outcome)
		} else {
			require.True(t, ended.Add(tc.next).Equal(got.NextAttemptAt), "%s: next %s", tc.outcome, got.NextAttemptAt)
		}
	}
}

func TestRetriesFollowTheBackoffUntilExhausted(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	ct := e.contacts(c.ID, store.Contact{Phone: "+12125550100", TimeZone: "America/New_York"})[0]

	require.Equal(t, 1, e.roundAt(c.ID, tuesday).Dispatched)
	e.clock.Set(tuesday.Add(time.Minute))
	res := e.finish(AttemptID(ct.ID, 1), store.CallNoAnswer, OutcomeNoAnswer, time.Time{})
	require.True(t, res.Applied)
	require.Equal(t, store.ContactPending, res.Status)
	next := tuesday.Add(31 * time.Minute)
	require.True(t, next.Equal(res.NextAttemptAt), "30 min after the call ended: %s", res.NextAttemptAt)

	require.Zero(t, e.roundAt(c.ID, next.Add(-time.Second)).Dispatched, "not before the backoff")
	require.Equal(t, 1, e.roundAt(c.ID, next).Dispatched)
	e.requireDispatched(c.ID, 2, ct)

	e.clock.Set(next.Add(2 * time.Minute))
	res = e.finish(AttemptID(ct.ID, 2), store.CallBusy, OutcomeBusy, time.Time{})
	next = next.Add(2*time.Minute + 2*time.Hour)
	require.True(t, next.Equal(res.NextAttemptAt), "2 h after the second call: %s", res.NextAttemptAt)
	require.Zero(t, e.roundAt(c.ID, next.Add(-time.Minute)).Dispatched)
	require.Equal(t, 1, e.roundAt(c.ID, next).Dispatched)
	e.requireDispatched(c.ID, 3, ct)

	e.clock.Set(next.Add(time.Minute))
	res = e.finish(AttemptID(ct.ID, 3), store.CallFailed, OutcomeFailed, time.Time{})
	require.Equal(t, store.ContactExhausted, res.Status, "three attempts used")
	got := e.contact(ct.ID)
	require.Equal(t, store.ContactExhausted, got.Status)
	require.Equal(t, 3, got.Attempts)
	require.Equal(t, "failed", got.LastOutcome)
	require.Equal(t, AttemptID(ct.ID, 3), got.LastAttemptID)
	require.True(t, got.NextAttemptAt.IsZero())

	r := e.roundAt(c.ID, next.Add(time.Hour))
	require.Zero(t, r.Dispatched)
	require.True(t, r.Completed, "its only contact is final")
	require.Equal(t, store.CampaignCompleted, e.campaignStatus(c.ID))
	require.Len(t, e.attempts(c.ID), 3, "never more attempts than the policy allows")
}

func TestRetryWaitsForTheNextCallingWindow(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	ct := e.contacts(c.ID, store.Contact{Phone: "+12125550100", TimeZone: "America/New_York"})[0]
	late := utc("2026-03-11 00:40") // 20:40 EDT
	e.roundAt(c.ID, late)
	e.clock.Set(late.Add(5 * time.Minute))
	res := e.finish(AttemptID(ct.ID, 1), store.CallNoAnswer, OutcomeNoAnswer, time.Time{})
	// 20:45 + 30 min is after 21:00: the next morning at 08:00 EDT.
	require.Equal(t, utc("2026-03-11 12:00"), res.NextAttemptAt.UTC())
	require.True(t, utc("2026-03-11 12:00").Equal(e.contact(ct.ID).NextAttemptAt))
	require.Zero(t, e.roundAt(c.ID, utc("2026-03-11 11:59")).Dispatched)
	require.Equal(t, 1, e.roundAt(c.ID, utc("2026-03-11 12:00")).Dispatched)
}

func TestCallbackSetsTheNextAttempt(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	ct := e.contacts(c.ID, store.Contact{Phone: "+12125550100", TimeZone: "America/New_York"})[0]
	e.roundAt(c.ID, tuesday)
	callback := utc("2026-03-12 19:15") // Thursday 15:15 EDT, as the callee asked
	res := e.finish(AttemptID(ct.ID, 1), store.CallCompleted, OutcomeCompleted, callback)
	require.Equal(t, store.ContactPending, res.Status)
	require.True(t, callback.Equal(res.NextAttemptAt))
	require.Zero(t, e.roundAt(c.ID, callback.Add(-time.Minute)).Dispatched)
	require.Equal(t, 1, e.roundAt(c.ID, callback).Dispatched)

	// A callback asked for at night waits for the morning.
	e.clock.Set(callback.Add(time.Minute))
	res = e.finish(AttemptID(ct.ID, 2), store.CallCompleted, OutcomeCompleted, utc("2026-03-13 03:00"))
	require.Equal(t, utc("2026-03-13 12:00"), res.NextAttemptAt.UTC(), "Friday 08:00 EDT")
}

func TestVoicemailIsRetriedOnlyWhenTheCampaignSaysSo(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	plain := e.campaign(nil)
	retrying := e.campaign(func(c *store.Campaign) {
		c.Retry = store.RetryPolicy{MaxAttempts: 2, RetryOutcomes: []string{"voicemail"}, BackoffSeconds: []int{3600}}
	})
	a := e.contacts(plain.ID, store.Contact{Phone: "+12125550100"})[0]
	b := e.contacts(retrying.ID, store.Contact{Phone: "+12125550100"})[0]
	e.roundAt(plain.ID, tuesday)
	e.clock.Set(tuesday.Add(time.Minute)) // the second campaign's round
	_, err := e.svc.Round(t.Context(), retrying.ID)
	require.NoError(t, err)

	require.Equal(t, store.ContactExhausted, e.finish(AttemptID(a.ID, 1), store.CallVoicemail, OutcomeVoicemail, time.Time{}).Status)
	res := e.finish(AttemptID(b.ID, 1), store.CallVoicemail, OutcomeVoicemail, time.Time{})
	require.Equal(t, store.ContactPending, res.Status)
	require.True(t, tuesday.Add(time.Minute+time.Hour).Equal(res.NextAttemptAt))
	require.Equal(t, 1, e.roundAt(retrying.ID, res.NextAttemptAt).Dispatched)
	require.Equal(t, store.ContactExhausted, e.finish(AttemptID(b.ID, 2), store.CallVoicemail, OutcomeVoicemail, time.Time{}).Status,
		"max_attempts 2")
}

func TestOptedOutOutcomeListsTheNumber(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	other := e.campaign(nil)
	ct := e.contacts(c.ID, store.Contact{Phone: "+12125550100"})[0]
	same := e.contacts(other.ID, store.Contact{Phone: "+12125550100"})[0]
	e.roundAt(c.ID, tuesday)
	res := e.finish(AttemptID(ct.ID, 1), store.CallCompleted, OutcomeOptedOut, time.Time{})
	require.Equal(t, store.ContactDoNotCall, res.Status)
	listed, err := e.st.IsDoNotCall(t.Context(), "+12125550100")
	require.NoError(t, err)
	require.True(t, listed)

	// The same number in another campaign is never dialed either.
	r := e.roundAt(other.ID, tuesday.Add(time.Minute))
	require.Zero(t, r.Dispatched)
	require.Equal(t, 1, r.DoNotCall)
	require.Equal(t, store.ContactDoNotCall, e.contact(same.ID).Status)
}

func TestApplyOutcomeIsIdempotentAndNeverGoesBack(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	ct := e.contacts(c.ID, store.Contact{Phone: "+12125550100"})[0]
	e.roundAt(c.ID, tuesday)
	first := e.finish(AttemptID(ct.ID, 1), store.CallNoAnswer, OutcomeNoAnswer, time.Time{})
	call, err := e.st.GetCall(t.Context(), AttemptID(ct.ID, 1))
	require.NoError(t, err)

	e.clock.Set(tuesday.Add(10 * time.Minute))
	again, err := e.svc.ApplyOutcome(t.Context(), call, "no_answer", time.Time{})
	require.NoError(t, err)
	require.True(t, again.Applied)
	require.Equal(t, first.Decision, again.Decision, "backoff counts from when the call ended, not from now")

	e.roundAt(c.ID, first.NextAttemptAt)
	late, err := e.svc.ApplyOutcome(t.Context(), call, "completed", time.Time{})
	require.NoError(t, err)
	require.False(t, late.Applied, "attempt 1's outcome after attempt 2 started")
	got := e.contact(ct.ID)
	require.Equal(t, store.ContactPending, got.Status)
	require.Equal(t, 1, got.Attempts)
	require.Equal(t, "no_answer", got.LastOutcome, "unchanged")

	_, err = e.svc.ApplyOutcome(t.Context(), call, "hung_up", time.Time{})
	require.ErrorContains(t, err, `outcome "hung_up"`)
	res, err := e.svc.ApplyOutcome(t.Context(), &store.Call{ID: "inline-1", Phone: "+12125550100", Attempt: 1}, "completed", time.Time{})
	require.NoError(t, err, "inline calls have no contact")
	require.Empty(t, res.Status)
}

func TestAttemptCancelledBeforeDialingDoesNotUseUpTheContact(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(func(c *store.Campaign) { c.Retry.MaxAttempts = 1 })
	ct := e.contacts(c.ID, store.Contact{Phone: "+12125550100"})[0]
	e.roundAt(c.ID, tuesday)
	res := e.finish(AttemptID(ct.ID, 1), store.CallCancelled, OutcomeCancelled, time.Time{})
	require.Equal(t, store.ContactPending, res.Status)

	require.Equal(t, 1, e.roundAt(c.ID, tuesday.Add(time.Minute)).Dispatched, "the one allowed dial is still there")
	e.requireDispatched(c.ID, 2, ct)
	res = e.finish(AttemptID(ct.ID, 2), store.CallNoAnswer, OutcomeNoAnswer, time.Time{})
	require.Equal(t, store.ContactExhausted, res.Status)
	require.Zero(t, e.roundAt(c.ID, tuesday.Add(time.Hour)).Dispatched)
}

func TestCheckDialRefusesANumberListedAfterDispatch(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	cs := e.contacts(c.ID, phones(2, "America/New_York")...)
	e.roundAt(c.ID, tuesday)
	ctx := t.Context()
	a0, err := e.st.GetCall(ctx, AttemptID(cs[0].ID, 1))
	require.NoError(t, err)
	a1, err := e.st.GetCall(ctx, AttemptID(cs[1].ID, 1))
	require.NoError(t, err)
	require.NoError(t, e.svc.CheckDial(ctx, a0))

	// The callee opts out (another campaign's call) between dispatch and dial.
	require.NoError(t, e.svc.OptOut(ctx, cs[0].Phone, ""))
	err = e.svc.CheckDial(ctx, a0)
	require.ErrorIs(t, err, ErrDoNotCall)
	require.ErrorIs(t, err, ErrMustNotDial)
	require.NoError(t, e.svc.CheckDial(ctx, a1), "the other contact may be dialed")

	// The call flow ends the attempt undialed; the contact is then finished
	// as do-not-call by the next round, and never dialed.
	res := e.finish(a0.ID, store.CallCancelled, OutcomeCancelled, time.Time{})
	require.Equal(t, store.ContactPending, res.Status)
	r := e.roundAt(c.ID, tuesday.Add(time.Minute))
	require.Equal(t, 1, r.DoNotCall)
	require.Zero(t, r.Dispatched)
	require.Equal(t, store.ContactDoNotCall, e.contact(cs[0].ID).Status)

	// After hours in the contact's zone: a task that sat in a backed-up
	// queue must not dial at 22:00.
	e.clock.Set(utc("2026-03-11 02:00"))
	err = e.svc.CheckDial(ctx, a1)
	require.ErrorIs(t, err, ErrOutsideCallingHours)
	require.ErrorContains(t, err, "Tue 22:00 EDT")

	inline := &store.Call{ID: "inline-call-1", Phone: cs[0].Phone}
	require.ErrorIs(t, e.svc.CheckDial(ctx, inline), ErrDoNotCall)
	inline.Phone = "+12125559999"
	err = e.svc.CheckDial(ctx, inline)
	require.ErrorIs(t, err, ErrOutsideCallingHours, "inline calls keep calling hours too")
	require.ErrorContains(t, err, "Tue 22:00 EDT in America/New_York")

	require.ErrorContains(t, e.svc.OptOut(ctx, "555-0100", "x"), "E.164")
	listed, err := e.st.IsDoNotCall(ctx, cs[0].Phone)
	require.NoError(t, err)
	require.True(t, listed)
}

func TestCampaignCompletesWhenEveryContactIsFinal(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	cs := e.contacts(c.ID, phones(3, "")...)
	e.roundAt(c.ID, tuesday)
	e.finish(AttemptID(cs[0].ID, 1), store.CallCompleted, OutcomeCompleted, time.Time{})
	e.finish(AttemptID(cs[1].ID, 1), store.CallCompleted, OutcomeOptedOut, time.Time{})
	r := e.roundAt(c.ID, tuesday.Add(time.Minute))
	require.False(t, r.Completed, "one call is still live")
	require.Equal(t, store.CampaignRunning, e.campaignStatus(c.ID))

	e.finish(AttemptID(cs[2].ID, 1), store.CallVoicemail, OutcomeVoicemail, time.Time{})
	r = e.roundAt(c.ID, tuesday.Add(2*time.Minute))
	require.True(t, r.Completed)
	require.Equal(t, store.CampaignCompleted, e.campaignStatus(c.ID))

	e.clock.Set(tuesday.Add(3 * time.Minute))
	r, err := e.svc.Round(t.Context(), c.ID)
	require.NoError(t, err)
	require.Equal(t, "campaign is completed", r.Skipped)
}

func TestCampaignWindowEndFinishesTheCampaign(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	end := tuesday.Add(2 * time.Hour)
	c := e.campaign(func(c *store.Campaign) { c.Schedule.WindowEnd = end; c.ConcurrencyLimit = 1 })
	cs := e.contacts(c.ID, phones(3, "")...)
	e.roundAt(c.ID, tuesday)
	first := AttemptID(cs[0].ID, 1)
	claim, err := e.st.ClaimAttempt(ctx, first, "caller", 3*time.Hour)
	require.NoError(t, err)
	require.NoError(t, e.st.Transition(ctx, claim, store.CallInProgress, store.CallFields{}))

	r := e.roundAt(c.ID, end)
	require.Zero(t, r.Dispatched)
	require.False(t, r.Completed, "a call is still live")

	e.clock.Set(end.Add(time.Minute))
	require.NoError(t, e.st.Transition(ctx, claim, store.CallCompleted, store.CallFields{}))
	call, err := e.st.GetCall(ctx, first)
	require.NoError(t, err)
	_, err = e.svc.ApplyOutcome(ctx, call, "completed", time.Time{})
	require.NoError(t, err)
	r = e.roundAt(c.ID, end.Add(2*time.Minute))
	require.False(t, r.Completed, "late outcomes may still be applied")
	r = e.roundAt(c.ID, end.Add(DefaultSettleAfter))
	require.True(t, r.Completed)
	require.Equal(t, store.CampaignCompleted, e.campaignStatus(c.ID))
	require.Equal(t, store.ContactCompleted, e.contact(cs[0].ID).Status)
	for _, ct := range cs[1:] {
		require.Equal(t, store.ContactExhausted, e.contact(ct.ID).Status, "never reached before the window closed")
	}
	require.Len(t, e.attempts(c.ID), 1)
}

// The incident: an inline call to +81355550199 was dialled at 00:29 Tokyo
// time, because CheckDial returned before the window check for attempts
// without a campaign.
func TestCheckDialKeepsInlineCallsInsideCallingHours(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	tokyo := &store.Call{ID: "inline-tokyo-1", Phone: "+81355550199"}
	e.clock.Set(utc("2026-11-28 15:29")) // Sun 00:29 JST
	err := e.svc.CheckDial(ctx, tokyo)
	require.ErrorIs(t, err, ErrOutsideCallingHours)
	require.ErrorContains(t, err, "it is Sun 00:29 JST in Asia/Tokyo")
	e.clock.Set(utc("2026-11-29 01:00")) // Sun 10:00 JST
	require.NoError(t, e.svc.CheckDial(ctx, tokyo))

	// Every zone of a number that may ring in several: 08:30 in Boise is
	// 07:30 in Los Angeles.
	boise := &store.Call{ID: "inline-boise-1", Phone: "+12085550100"}
	e.clock.Set(utc("2026-07-01 14:30"))
	require.ErrorIs(t, e.svc.CheckDial(ctx, boise), ErrOutsideCallingHours)
	// Naming the callee's zone (one of the country's) narrows it to that.
	boise.TimeZone = "America/Boise"
	require.NoError(t, e.svc.CheckDial(ctx, boise))
	boise.TimeZone = "Asia/Tokyo"
	require.ErrorIs(t, e.svc.CheckDial(ctx, boise), ErrMustNotDial, "a zone of another country is refused")

	unknown := &store.Call{ID: "inline-unknown-1", Phone: "+15551234567"}
	err = e.svc.CheckDial(ctx, unknown)
	require.ErrorIs(t, err, ErrMustNotDial)
	require.ErrorIs(t, err, ErrNoTimeZone, "no zone, no call")
}

// A contact filed under New York whose number rings in Los Angeles waits
// for 08:00 in Los Angeles; one whose number has no known zone is finished
// without a call. Before, both were dialed at 10:00 New York.
func TestRoundKeepsTheLawWhereTheNumberRings(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	cs := e.contacts(c.ID,
		store.Contact{Phone: "+14155550100"}, // default zone New York, number in Los Angeles
		store.Contact{Phone: "+15551234567", TimeZone: "America/New_York"},
		store.Contact{Phone: "+12125550100"},
	)
	la, unknown, ny := cs[0], cs[1], cs[2]

	r := e.roundAt(c.ID, tuesday) // 10:00 New York, 07:00 Los Angeles
	require.Equal(t, 1, r.Dispatched)
	require.Equal(t, 1, r.OutsideHours)
	e.requireDispatched(c.ID, 1, ny)
	got := e.contact(unknown.ID)
	require.Equal(t, store.ContactExhausted, got.Status)
	require.Equal(t, "no_time_zone", got.LastOutcome)
	require.Equal(t, store.ContactPending, e.contact(la.ID).Status)

	// Queued at 08:00 Los Angeles, but the task waited until 21:00 there.
	r = e.roundAt(c.ID, utc("2026-03-10 15:00"))
	require.Equal(t, 1, r.Dispatched)
	a, err := e.st.GetCall(t.Context(), AttemptID(la.ID, 1))
	require.NoError(t, err)
	e.clock.Set(utc("2026-03-11 04:00")) // 00:00 New York, 21:00 Los Angeles
	require.ErrorIs(t, e.svc.CheckDial(t.Context(), a), ErrOutsideCallingHours)
	e.clock.Set(utc("2026-03-11 00:30")) // 20:30 New York, 17:30 Los Angeles
	require.NoError(t, e.svc.CheckDial(t.Context(), a))
}

// A contact whose number and zone can never be inside the hours at once
// is finished, not left pending for ever.
func TestRoundFinishesAContactThatCanNeverBeCalled(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(func(c *store.Campaign) {
		c.Schedule.CallingHoursStart, c.Schedule.CallingHoursEnd = "15:00", "21:00"
	})
	ct := e.contacts(c.ID, store.Contact{Phone: "+14155550100", TimeZone: "Asia/Tokyo"})[0]
	r := e.roundAt(c.ID, utc("2026-03-10 07:00")) // 16:00 Tokyo, 00:00 Los Angeles
	require.Zero(t, r.Dispatched)
	got := e.contact(ct.ID)
	require.Equal(t, store.ContactExhausted, got.Status)
	require.Equal(t, "no_calling_hours", got.LastOutcome)
}

// The incident: a contact written with attempts: 3 (max 3) and no attempt
// documents was dialed as attempt 4.
func TestRoundRespectsTheContactsAttemptCounter(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(func(c *store.Campaign) { c.Retry.MaxAttempts = 3 })
	cs := e.contacts(c.ID,
		store.Contact{Phone: "+12125550100", Attempts: 3},
		store.Contact{Phone: "+12125550101", Attempts: 2},
	)
	spent, one := cs[0], cs[1]
	r := e.roundAt(c.ID, tuesday)
	require.Equal(t, 1, r.Dispatched)
	e.requireDispatched(c.ID, 3, one)
	_, dialed := e.attempts(c.ID)[AttemptID(spent.ID, 4)]
	require.False(t, dialed, "attempt 4 of 3")
	got := e.contact(spent.ID)
	require.Equal(t, store.ContactExhausted, got.Status)
	require.Equal(t, "max_attempts", got.LastOutcome)

	// Two attempts made elsewhere plus this one are all three.
	res := e.finish(AttemptID(one.ID, 3), store.CallNoAnswer, OutcomeNoAnswer, time.Time{})
	require.Equal(t, store.ContactExhausted, res.Status)
	require.Zero(t, e.roundAt(c.ID, tuesday.Add(2*time.Hour)).Dispatched)
}

// The incident: a campaign written before its contacts (the order
// docs/CAMPAIGNS.md shows) was completed by the next round, and then
// refused the import.
func TestCampaignWaitsForItsContacts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	c := e.campaign(func(c *store.Campaign) { c.Agent.InstructionsTemplate = "Hello {{practice}}" })
	for i := range 3 {
		r := e.roundAt(c.ID, tuesday.Add(time.Duration(i)*time.Minute))
		require.False(t, r.Completed, "round %d", i)
		require.Equal(t, store.CampaignRunning, e.campaignStatus(c.ID))
	}
	rep, err := e.svc.Import(ctx, c.ID, strings.NewReader("phone,practice\n+12125550100,Elm\n"), false)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Imported)
	var ct store.Contact
	require.NoError(t, e.st.DB().Collection(store.CollContacts).FindOne(ctx, bson.D{{Key: "campaign_id", Value: c.ID}}).Decode(&ct))
	require.Equal(t, 1, e.roundAt(c.ID, tuesday.Add(3*time.Minute)).Dispatched)
	e.finish(AttemptID(ct.ID, 1), store.CallCompleted, OutcomeCompleted, time.Time{})
	r := e.roundAt(c.ID, tuesday.Add(4*time.Minute))
	require.True(t, r.Completed, "it had contacts, and all are finished")
	require.Equal(t, store.CampaignCompleted, e.campaignStatus(c.ID))
}

// completionRace writes a contact right before the round completes the
// campaign: between its count of open contacts and the status change.
type completionRace struct {
	Store
	before func()
}

func (s completionRace) SetCampaignStatus(ctx context.Context, id bson.ObjectID, from []store.CampaignStatus, to store.CampaignStatus, now time.Time) (store.CampaignStatus, error) {
	if to == store.CampaignCompleted && s.before != nil {
		s.before()
	}
	return s.Store.SetCampaignStatus(ctx, id, from, to, now)
}

func TestCampaignReopensForAContactWrittenAsItCompletes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	ct := e.contacts(c.ID, phones(1, "")...)[0]
	e.roundAt(c.ID, tuesday)
	e.finish(AttemptID(ct.ID, 1), store.CallCompleted, OutcomeCompleted, time.Time{})

	race := completionRace{Store: e.st, before: func() {
		e.contacts(c.ID, store.Contact{Phone: "+12125550199"})
	}}
	svc := New(race, e.svc.queue, Options{Now: e.clock.Now, Owner: "racer", Logger: e.svc.log})
	e.clock.Set(tuesday.Add(time.Minute))
	r, err := svc.Round(t.Context(), c.ID)
	require.NoError(t, err)
	require.False(t, r.Completed)
	require.Equal(t, store.CampaignRunning, e.campaignStatus(c.ID), "the late contact will be called")
	require.Equal(t, 1, e.roundAt(c.ID, tuesday.Add(2*time.Minute)).Dispatched)
}
