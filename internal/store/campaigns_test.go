package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshield/voice-worker/internal/testenv"
)

var t0 = time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)

func insertCampaign(t *testing.T, s *Store, status CampaignStatus) *Campaign {
	t.Helper()
	c := &Campaign{Name: "test", Status: status, ConcurrencyLimit: 5}
	require.NoError(t, s.InsertCampaign(t.Context(), c))
	return c
}

func insertContacts(t *testing.T, s *Store, cs ...Contact) []Contact {
	t.Helper()
	ins, dups, err := s.InsertContacts(t.Context(), cs)
	require.NoError(t, err)
	require.Equal(t, len(cs), ins)
	require.Zero(t, dups)
	var out []Contact
	require.NoError(t, s.findAll(t.Context(), s.contacts, bson.D{}, nil, &out))
	return out
}

func TestCampaignRoundtripAndStatus(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := insertCampaign(t, s, CampaignScheduled)
	got, err := s.GetCampaign(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, "test", got.Name)
	require.ErrorIs(t, s.InsertCampaign(ctx, c), ErrDuplicate)

	prev, err := s.SetCampaignStatus(ctx, c.ID, []CampaignStatus{CampaignScheduled}, CampaignRunning, t0)
	require.NoError(t, err)
	require.Equal(t, CampaignScheduled, prev)

	prev, err = s.SetCampaignStatus(ctx, c.ID, []CampaignStatus{CampaignScheduled}, CampaignRunning, t0)
	require.ErrorIs(t, err, ErrInvalidTransition)
	require.ErrorContains(t, err, "campaign is running")
	require.Equal(t, CampaignRunning, prev)

	_, err = s.SetCampaignStatus(ctx, bson.NewObjectID(), []CampaignStatus{CampaignRunning}, CampaignPaused, t0)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.GetCampaign(ctx, bson.NewObjectID())
	require.ErrorIs(t, err, ErrNotFound)

	other := insertCampaign(t, s, CampaignPaused)
	insertCampaign(t, s, CampaignCompleted)
	ids, err := s.CampaignIDsByStatus(ctx, CampaignRunning, CampaignPaused)
	require.NoError(t, err)
	require.Equal(t, []bson.ObjectID{c.ID, other.ID}, ids)
}

func TestDispatchRoundHasOneWinner(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	campaign := bson.NewObjectID()
	const n = 20
	won := make([]bool, n)
	errs := collectErrors(n, func(i int) error {
		var err error
		won[i], err = s.ClaimDispatchRound(ctx, DispatchRound{
			ID: campaign.Hex() + "-7", CampaignID: campaign, Owner: fmt.Sprint("w", i), StartedAt: t0,
		})
		return err
	})
	winners := 0
	for i := range n {
		require.NoError(t, errs[i])
		if won[i] {
			winners++
		}
	}
	require.Equal(t, 1, winners)

	ok, err := s.ClaimDispatchRound(ctx, DispatchRound{ID: campaign.Hex() + "-8", CampaignID: campaign, Owner: "w", StartedAt: t0.Add(time.Hour)})
	require.NoError(t, err)
	require.True(t, ok, "the next round is a new election")

	require.NoError(t, s.PruneDispatchRounds(ctx, campaign, t0.Add(time.Minute)))
	left, err := s.DB().Collection(CollDispatchRounds).CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	require.EqualValues(t, 1, left, "only the old round is pruned")
}

func TestInsertContactsSkipsDuplicates(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	campaign := bson.NewObjectID()
	ins, dups, err := s.InsertContacts(ctx, []Contact{
		{CampaignID: campaign, Phone: "+14155550100", Status: ContactPending},
		{CampaignID: campaign, Phone: "+14155550101", Status: ContactPending},
	})
	require.NoError(t, err)
	require.Equal(t, 2, ins)
	require.Zero(t, dups)

	ins, dups, err = s.InsertContacts(ctx, []Contact{
		{CampaignID: campaign, Phone: "+14155550101", Status: ContactPending, Name: "changed"},
		{CampaignID: campaign, Phone: "+14155550102", Status: ContactPending},
	})
	require.NoError(t, err)
	require.Equal(t, 1, ins)
	require.Equal(t, 1, dups)
	n, err := s.CountContacts(ctx, campaign)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	var kept Contact
	require.NoError(t, s.contacts.FindOne(ctx, bson.D{{Key: "phone", Value: "+14155550101"}}).Decode(&kept))
	require.Empty(t, kept.Name, "an existing contact is left as it was")

	_, _, err = s.InsertContacts(ctx, []Contact{{CampaignID: campaign, Phone: "555"}})
	require.ErrorContains(t, err, "Contact.Phone")
}

func TestDueContactsSelectsByStatusTimeAndZone(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	campaign := bson.NewObjectID()
	cs := insertContacts(t, s,
		Contact{CampaignID: campaign, Phone: "+14155550100", Status: ContactPending, TimeZone: "America/New_York"},
		Contact{CampaignID: campaign, Phone: "+14155550101", Status: ContactPending}, // no zone
		Contact{CampaignID: campaign, Phone: "+14155550102", Status: ContactPending, TimeZone: "Europe/London", NextAttemptAt: t0.Add(-time.Minute)},
		Contact{CampaignID: campaign, Phone: "+14155550103", Status: ContactPending, TimeZone: "Europe/London", NextAttemptAt: t0.Add(time.Minute)},
		Contact{CampaignID: campaign, Phone: "+14155550104", Status: ContactCalling, TimeZone: "America/New_York"},
		Contact{CampaignID: campaign, Phone: "+14155550105", Status: ContactPending, TimeZone: "Asia/Kolkata"},
		Contact{CampaignID: bson.NewObjectID(), Phone: "+14155550106", Status: ContactPending, TimeZone: "America/New_York"},
	)
	phones := func(p DuePage) []string {
		var out []string
		for _, c := range p.Contacts {
			out = append(out, c.Phone)
		}
		return out
	}
	q := DueQuery{CampaignID: campaign, Now: t0, Zones: []string{"America/New_York", "Europe/London"}, IncludeNoZone: true, Limit: 10}
	got, err := s.DueContacts(ctx, q)
	require.NoError(t, err)
	require.Equal(t, []string{"+14155550100", "+14155550101", "+14155550102"}, phones(got))

	q.IncludeNoZone = false
	got, err = s.DueContacts(ctx, q)
	require.NoError(t, err)
	require.Equal(t, []string{"+14155550100", "+14155550102"}, phones(got))

	q.Zones, q.IncludeNoZone = nil, false
	got, err = s.DueContacts(ctx, q)
	require.NoError(t, err)
	require.Empty(t, got.Contacts, "no open zone: nothing due")

	q = DueQuery{CampaignID: campaign, Now: t0, Zones: []string{"America/New_York", "Europe/London", "Asia/Kolkata"}, IncludeNoZone: true, Limit: 2}
	got, err = s.DueContacts(ctx, q)
	require.NoError(t, err)
	require.Equal(t, []string{"+14155550100", "+14155550101"}, phones(got))
	require.Equal(t, got.Contacts[1].ID, got.Last)
	q.AfterID = got.Last
	got, err = s.DueContacts(ctx, q)
	require.NoError(t, err)
	require.Equal(t, []string{"+14155550102", "+14155550105"}, phones(got), "the next page")

	q.AfterID, q.Exclude, q.Limit = bson.ObjectID{}, []bson.ObjectID{cs[0].ID, cs[2].ID}, 10
	got, err = s.DueContacts(ctx, q)
	require.NoError(t, err)
	require.Equal(t, []string{"+14155550101", "+14155550105"}, phones(got), "contacts with a live attempt left out")

	sv, err := s.SurveyContacts(ctx, campaign)
	require.NoError(t, err)
	require.Equal(t, []string{"America/New_York", "Asia/Kolkata", "Europe/London"}, sv.Zones)
	require.Zero(t, sv.Mistyped.Total())
	require.Len(t, cs, 7)
}

func TestContactOutcomesNeverGoBackwards(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	campaign := bson.NewObjectID()
	cs := insertContacts(t, s, Contact{CampaignID: campaign, Phone: "+14155550100", Status: ContactPending})
	id := cs[0].ID
	get := func() *Contact {
		c, err := s.GetContact(ctx, id)
		require.NoError(t, err)
		return c
	}

	next := t0.Add(30 * time.Minute)
	out := ContactOutcome{Status: ContactPending, Attempt: 1, AttemptID: "a-1", NextAttemptAt: next, LastOutcome: "no_answer"}
	ok, err := s.SetContactOutcome(ctx, id, out, t0)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.SetContactOutcome(ctx, id, out, t0)
	require.NoError(t, err)
	require.True(t, ok, "the same outcome again matches and writes the same values")
	c := get()
	require.Equal(t, ContactPending, c.Status)
	require.Equal(t, 1, c.Attempts)
	require.Equal(t, "a-1", c.LastAttemptID)
	require.True(t, next.Equal(c.NextAttemptAt))
	require.Equal(t, "no_answer", c.LastOutcome)

	ok, err = s.SetContactOutcome(ctx, id, ContactOutcome{Status: ContactPending, Attempt: 2, AttemptID: "a-2", NextAttemptAt: next, LastOutcome: "busy"}, t0)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.SetContactOutcome(ctx, id, out, t0)
	require.NoError(t, err)
	require.False(t, ok, "attempt 1's outcome after attempt 2's changes nothing")
	require.Equal(t, "busy", get().LastOutcome)

	ok, err = s.SetContactOutcome(ctx, id, ContactOutcome{Status: ContactCompleted, Attempt: 3, AttemptID: "a-3", LastOutcome: "completed"}, t0)
	require.NoError(t, err)
	require.True(t, ok)
	c = get()
	require.Equal(t, ContactCompleted, c.Status)
	require.Equal(t, 3, c.Attempts)
	require.True(t, c.NextAttemptAt.IsZero(), "a final contact has no next attempt")

	ok, err = s.SetContactOutcome(ctx, id, ContactOutcome{Status: ContactPending, Attempt: 3, NextAttemptAt: next}, t0)
	require.NoError(t, err)
	require.False(t, ok, "a final contact stays final")

	_, err = s.SetContactOutcome(ctx, id, ContactOutcome{Status: ContactPending}, t0)
	require.ErrorContains(t, err, "ContactOutcome.Status and Attempt")
	_, err = s.GetContact(ctx, bson.NewObjectID())
	require.ErrorIs(t, err, ErrNotFound)
}

func TestFinishAndExhaustPendingContacts(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	campaign := bson.NewObjectID()
	cs := insertContacts(t, s,
		Contact{CampaignID: campaign, Phone: "+14155550100", Status: ContactPending},
		Contact{CampaignID: campaign, Phone: "+14155550101", Status: ContactCalling},
		Contact{CampaignID: campaign, Phone: "+14155550102", Status: ContactPending},
	)
	require.NoError(t, s.FinishPendingContacts(ctx, []bson.ObjectID{cs[0].ID, cs[1].ID}, ContactDoNotCall, "do_not_call", t0))
	n, err := s.CountContacts(ctx, campaign, ContactDoNotCall)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only a pending contact is finished")

	ex, err := s.ExhaustPendingContacts(ctx, campaign, t0)
	require.NoError(t, err)
	require.EqualValues(t, 1, ex)
	byStatus, err := s.countBy(ctx, s.contacts, bson.D{{Key: "campaign_id", Value: campaign}}, "status")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"do_not_call": 1, "calling": 1, "exhausted": 1}, byStatus)
}

func campaignAttempt(campaign, contact bson.ObjectID, n int) *Call {
	return &Call{ID: fmt.Sprintf("%s-%d", contact.Hex(), n), CampaignID: campaign, ContactID: contact, Attempt: n,
		Status: CallQueued, CreatedAt: t0, QueuedAt: t0}
}

func TestCreateAttemptsElectsOneWriterPerAttempt(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	other := openStore(t, testenv.MongoURI(t), s.DB().Name())
	ctx := t.Context()
	campaign := bson.NewObjectID()
	var batch []*Call
	for range 30 {
		batch = append(batch, campaignAttempt(campaign, bson.NewObjectID(), 1))
	}
	created := make([]int, 2)
	errs := collectErrors(2, func(i int) error {
		st := []*Store{s, other}[i]
		dups, err := st.CreateAttempts(ctx, batch)
		created[i] = len(batch) - len(dups)
		return err
	})
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, len(batch), created[0]+created[1], "every attempt created exactly once between the two")
	n, err := s.calls.CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	require.EqualValues(t, len(batch), n)

	live, err := s.CountLiveAttempts(ctx, campaign)
	require.NoError(t, err)
	require.Equal(t, len(batch), live)
	contacts, err := s.LiveAttemptContacts(ctx, campaign)
	require.NoError(t, err)
	require.Len(t, contacts, len(batch))
	require.Contains(t, contacts, batch[7].ContactID)

	_, err = s.CreateAttempts(ctx, []*Call{{ID: "x-1", CampaignID: campaign, Status: CallQueued, CreatedAt: t0, QueuedAt: t0}})
	require.ErrorContains(t, err, "Call.ContactID")
}

func TestAttemptQueriesForDispatch(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	campaign, contact := bson.NewObjectID(), bson.NewObjectID()
	a1, a2 := campaignAttempt(campaign, contact, 1), campaignAttempt(campaign, contact, 2)
	a2.QueuedAt = t0.Add(time.Hour)
	_, err := s.CreateAttempts(ctx, []*Call{a1, a2})
	require.NoError(t, err)

	old, err := s.QueuedAttempts(ctx, campaign, t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, old, 1)
	require.Equal(t, a1.ID, old[0].ID)
	require.Equal(t, contact, old[0].ContactID)
	require.Equal(t, 1, old[0].Attempt)

	dialed, err := s.CountDialedAttempts(ctx, contact)
	require.NoError(t, err)
	require.Zero(t, dialed, "queued attempts are not dialed")

	claim, err := s.ClaimAttempt(ctx, a1.ID, "w", time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Transition(ctx, claim, CallNoAnswer, CallFields{Outcome: "no_answer"}))
	ok, err := s.CancelQueuedAttempt(ctx, a2.ID, "test", t0)
	require.NoError(t, err)
	require.True(t, ok)

	dialed, err = s.CountDialedAttempts(ctx, contact)
	require.NoError(t, err)
	require.Equal(t, 1, dialed, "the no-answer counts, the cancelled one does not")
	live, err := s.CountLiveAttempts(ctx, campaign)
	require.NoError(t, err)
	require.Zero(t, live)

	sums, err := s.AttemptSummaries(ctx, []string{a1.ID, a2.ID, "missing-1"})
	require.NoError(t, err)
	require.Len(t, sums, 2)
	for _, c := range sums {
		require.True(t, c.Status.Terminal(), c.ID)
		require.False(t, c.EndedAt.IsZero(), c.ID)
	}
	// One id is asked by equality: found, and missing.
	sums, err = s.AttemptSummaries(ctx, []string{a2.ID})
	require.NoError(t, err)
	require.Len(t, sums, 1)
	require.Equal(t, a2.ID, sums[0].ID)
	require.Equal(t, CallCancelled, sums[0].Status)
	sums, err = s.AttemptSummaries(ctx, []string{"missing-1"})
	require.NoError(t, err)
	require.Empty(t, sums)
}

func TestCancelQueuedAttemptRacesAClaim(t *testing.T) {
	t.Parallel()
	// Cancelling and dialing one attempt at once: exactly one of them wins,
	// and a cancelled attempt is never dialed.
	s := newTestStore(t)
	ctx := t.Context()
	campaign := bson.NewObjectID()
	for i := range 20 {
		a := campaignAttempt(campaign, bson.NewObjectID(), 1)
		_, err := s.CreateAttempts(ctx, []*Call{a})
		require.NoError(t, err)
		var cancelled bool
		var claimErr error
		errs := collectErrors(2, func(j int) error {
			if j == 0 {
				var err error
				cancelled, err = s.CancelQueuedAttempt(ctx, a.ID, "race", time.Now())
				return err
			}
			_, claimErr = s.ClaimAttempt(ctx, a.ID, "worker", time.Minute)
			return nil
		})
		require.NoError(t, errs[0])
		claimed := claimErr == nil
		if !claimed {
			require.True(t, errors.Is(claimErr, ErrClaimLost), "round %d: %v", i, claimErr)
		}
		require.NotEqual(t, cancelled, claimed, "round %d: exactly one wins", i)
		status := getCall(t, s, a.ID).Status
		if cancelled {
			require.Equal(t, CallCancelled, status, "round %d", i)
		} else {
			require.Equal(t, CallDialing, status, "round %d", i)
		}
	}
}

func TestCampaignStatsCounts(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	c := insertCampaign(t, s, CampaignRunning)
	cs := insertContacts(t, s,
		Contact{CampaignID: c.ID, Phone: "+14155550100", Status: ContactPending},
		Contact{CampaignID: c.ID, Phone: "+14155550101", Status: ContactPending},
		Contact{CampaignID: c.ID, Phone: "+14155550102", Status: ContactPending},
	)
	var attempts []*Call
	for _, ct := range cs {
		attempts = append(attempts, campaignAttempt(c.ID, ct.ID, 1))
	}
	_, err := s.CreateAttempts(ctx, attempts)
	require.NoError(t, err)
	answered, err := s.ClaimAttempt(ctx, attempts[0].ID, "w", time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Transition(ctx, answered, CallInProgress, CallFields{}))
	require.NoError(t, s.Transition(ctx, answered, CallCompleted, CallFields{Outcome: "opted_out"}))
	missed, err := s.ClaimAttempt(ctx, attempts[1].ID, "w", time.Minute)
	require.NoError(t, err)
	require.NoError(t, s.Transition(ctx, missed, CallNoAnswer, CallFields{}))
	_, err = s.SetContactOutcome(ctx, cs[0].ID, ContactOutcome{Status: ContactDoNotCall, Attempt: 1, LastOutcome: "opted_out"}, t0)
	require.NoError(t, err)

	st, err := s.CampaignStats(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, CampaignStats{
		Contacts:         3,
		ContactsByStatus: map[string]int{"pending": 2, "do_not_call": 1},
		Attempts:         3,
		Dialed:           2,
		Answered:         1,
		CallsByStatus:    map[string]int{"completed": 1, "no_answer": 1, "queued": 1},
		CallsByOutcome:   map[string]int{"opted_out": 1},
	}, st)
}

func TestListedPhones(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	require.NoError(t, s.AddDoNotCall(ctx, DoNotCall{Phone: "+14155550100", Source: "test"}))
	listed, err := s.ListedPhones(ctx, []string{"+14155550100", "+14155550101"})
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"+14155550100": true}, listed)
	_, err = s.ListedPhones(ctx, []string{"+14155550100", "555"})
	require.ErrorContains(t, err, "phone 2 of 2 is not E.164")
}
