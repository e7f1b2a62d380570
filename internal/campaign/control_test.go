package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"
)

func TestPauseResumeCancel(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	c := e.campaign(func(c *store.Campaign) { c.ConcurrencyLimit = 2 })
	cs := e.contacts(c.ID, phones(6, "")...)
	e.roundAt(c.ID, tuesday)
	e.requireDispatched(c.ID, 1, cs[:2]...)

	// A call in progress when the campaign is paused.
	claim, err := e.st.ClaimAttempt(ctx, AttemptID(cs[0].ID, 1), "caller", time.Minute)
	require.NoError(t, err)
	require.NoError(t, e.st.Transition(ctx, claim, store.CallInProgress, store.CallFields{}))

	ch, err := e.svc.Pause(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, Change{From: store.CampaignRunning, To: store.CampaignPaused}, ch)
	e.finish(AttemptID(cs[1].ID, 1), store.CallCompleted, OutcomeCompleted, time.Time{})
	e.clock.Set(tuesday.Add(time.Minute))
	r, err := e.svc.Round(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, "campaign is paused", r.Skipped)
	require.Len(t, e.attempts(c.ID), 2, "paused: nothing new")

	// The live call finishes normally.
	require.NoError(t, e.st.Transition(ctx, claim, store.CallCompleted, store.CallFields{}))
	_, err = e.svc.Pause(ctx, c.ID)
	require.ErrorIs(t, err, store.ErrInvalidTransition, "pausing twice says so")

	ch, err = e.svc.Resume(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, Change{From: store.CampaignPaused, To: store.CampaignScheduled}, ch)
	r = e.roundAt(c.ID, tuesday.Add(2*time.Minute))
	require.True(t, r.Started)
	require.Equal(t, 2, r.Dispatched, "both calls ended: two slots")
	e.requireDispatched(c.ID, 1, cs[:4]...)

	// A queued attempt of a paused campaign is refused right before dialing.
	_, err = e.svc.Pause(ctx, c.ID)
	require.NoError(t, err)
	queued, err := e.st.GetCall(ctx, AttemptID(cs[2].ID, 1))
	require.NoError(t, err)
	require.ErrorIs(t, e.svc.CheckDial(ctx, queued), ErrCampaignNotRunning)

	ch, err = e.svc.Cancel(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, Change{From: store.CampaignPaused, To: store.CampaignCancelled, CancelledAttempts: 2}, ch)
	got, err := e.st.GetCall(ctx, queued.ID)
	require.NoError(t, err)
	require.Equal(t, store.CallCancelled, got.Status)
	_, err = e.st.ClaimAttempt(ctx, queued.ID, "late-worker", time.Minute)
	require.ErrorIs(t, err, store.ErrClaimLost, "a cancelled campaign's queued attempt is never dialed")

	e.clock.Set(tuesday.Add(3 * time.Minute))
	r, err = e.svc.Round(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, "campaign is cancelled", r.Skipped)
	_, err = e.svc.Resume(ctx, c.ID)
	require.ErrorIs(t, err, store.ErrInvalidTransition, "cancelled is final")
	ch, err = e.svc.Cancel(ctx, c.ID)
	require.NoError(t, err, "cancelling again sweeps again")
	require.Zero(t, ch.CancelledAttempts)

	_, err = e.svc.Pause(ctx, bson.NewObjectID())
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestImportContacts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	c := e.campaign(func(c *store.Campaign) { c.Agent.InstructionsTemplate = "Confirm the appointments." })

	rep, err := e.svc.Import(ctx, c.ID, strings.NewReader(contactsCSV), true)
	require.NoError(t, err)
	require.True(t, rep.DryRun)
	require.Equal(t, 4, rep.Imported)
	n, err := e.st.CountContacts(ctx, c.ID)
	require.NoError(t, err)
	require.Zero(t, n, "a dry run writes nothing")

	rep, err = e.svc.Import(ctx, c.ID, strings.NewReader(contactsCSV), false)
	require.NoError(t, err)
	require.Equal(t, 4, rep.Imported)
	require.Zero(t, rep.AlreadyPresent)
	var lines []int
	for _, b := range rep.Bad {
		lines = append(lines, b.Line)
	}
	require.Equal(t, []int{3, 4, 5, 8, 10, 11}, lines)

	var elm store.Contact
	require.NoError(t, e.st.DB().Collection(store.CollContacts).FindOne(ctx,
		bson.D{{Key: "campaign_id", Value: c.ID}, {Key: "phone", Value: "+14155550100"}}).Decode(&elm))
	require.Equal(t, "Elm Street Dental", elm.Name)
	require.Equal(t, "America/Los_Angeles", elm.TimeZone)
	require.Equal(t, map[string]string{"practice": "Elm Street", "doctor": "Patel"}, elm.Variables)
	require.Equal(t, store.ContactPending, elm.Status)

	// Importing again, with one more row, adds only the new row.
	more := contactsCSV + "+14155550199,New One,,a,b\n"
	rep, err = e.svc.Import(ctx, c.ID, strings.NewReader(more), false)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Imported)
	require.Equal(t, 4, rep.AlreadyPresent)
	n, err = e.st.CountContacts(ctx, c.ID)
	require.NoError(t, err)
	require.EqualValues(t, 5, n)

	// Imported contacts are dispatched like any other.
	// 11:00 in New York, 08:00 in Los Angeles, 15:00 in London, but 02:00
	// in Sydney.
	r := e.roundAt(c.ID, tuesday.Add(time.Hour))
	require.Equal(t, 4, r.Dispatched)

	_, err = e.svc.Import(ctx, c.ID, strings.NewReader("name\nx\n"), false)
	require.ErrorContains(t, err, "no phone column")
	require.ErrorIs(t, err, ErrBadFile)
	done := e.campaign(func(c *store.Campaign) { c.Status = store.CampaignCompleted })
	_, err = e.svc.Import(ctx, done.ID, strings.NewReader(contactsCSV), false)
	require.ErrorContains(t, err, "is completed: it takes no new contacts")
	_, err = e.svc.Import(ctx, bson.NewObjectID(), strings.NewReader(contactsCSV), false)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestStats(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	c := e.campaign(nil)
	cs := e.contacts(c.ID, phones(4, "")...)
	e.roundAt(c.ID, tuesday)
	e.finish(AttemptID(cs[0].ID, 1), store.CallCompleted, OutcomeCompleted, time.Time{})
	e.finish(AttemptID(cs[1].ID, 1), store.CallNoAnswer, OutcomeNoAnswer, time.Time{})
	e.finish(AttemptID(cs[2].ID, 1), store.CallBusy, OutcomeBusy, time.Time{})

	// The round counted its campaign when it dispatched: that snapshot is
	// what stats shows, until a recount.
	st, err := e.svc.Stats(ctx, c.ID, false)
	require.NoError(t, err)
	require.Equal(t, tuesday, st.CountedAt)
	require.Equal(t, map[string]int{"queued": 4}, st.CallsByStatus)
	st, err = e.svc.Stats(ctx, c.ID, true)
	require.NoError(t, err)
	require.Equal(t, c.ID.Hex(), st.CampaignID)
	require.Equal(t, store.CampaignRunning, st.Status)
	require.Equal(t, 4, st.Contacts)
	require.Equal(t, map[string]int{"completed": 1, "pending": 3}, st.ContactsByStatus)
	require.Equal(t, 4, st.Attempts)
	require.Equal(t, map[string]int{"completed": 1, "no_answer": 1, "busy": 1, "queued": 1}, st.CallsByStatus)
	require.Equal(t, 3, st.Dialed)
	require.Equal(t, 1, st.Answered)
	require.InDelta(t, 1.0/3, st.AnswerRate, 1e-9)
	require.Equal(t, store.CampaignCounters{Attempts: 3, Completed: 1}, st.Counters)
	again, err := e.svc.Stats(ctx, c.ID, false)
	require.NoError(t, err)
	require.Equal(t, st.StatsSnapshot, again.StatsSnapshot, "the recount was stored")

	var b bytes.Buffer
	require.NoError(t, st.WriteText(&b))
	for _, want := range []string{"status       running", "contacts     4", "  pending    3", "attempts     4",
		"  no_answer  1", "dialed       3", "answered     1", "answer rate  33.3%",
		"counters     attempts 3, completed 1, failed 0, opt-outs 0"} {
		require.Contains(t, b.String(), want)
	}
	js, err := json.Marshal(st)
	require.NoError(t, err)
	require.Contains(t, string(js), `"answer_rate":0.3333333333333333`)
	require.Contains(t, string(js), `"contacts_by_status":{`)
}

// pausingStore pauses the campaign right after the first page of due
// contacts is read, as an operator would in the middle of a round.
type pausingStore struct {
	Store
	svc   *Service
	once  sync.Once
	pause error
}

func (p *pausingStore) DueContacts(ctx context.Context, q store.DueQuery) (store.DuePage, error) {
	cs, err := p.Store.DueContacts(ctx, q)
	p.once.Do(func() { _, p.pause = p.svc.Pause(ctx, q.CampaignID) })
	return cs, err
}

func TestPauseTakesEffectBetweenPagesOfARound(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	cs := e.contacts(c.ID, phones(6, "")...)
	ps := &pausingStore{Store: e.st, svc: e.svc}
	q := queue.NewClient(e.opt)
	t.Cleanup(func() { _ = q.Close() })
	svc := New(ps, q, Options{Now: e.clock.Now, Owner: "paged", PageSize: 2, Logger: zaptest.NewLogger(t)})

	e.clock.Set(tuesday)
	r, err := svc.Round(t.Context(), c.ID)
	require.NoError(t, err)
	require.NoError(t, ps.pause)
	require.Equal(t, 2, r.Dispatched, "the page read before the pause, and no more")
	e.requireDispatched(c.ID, 1, cs[:2]...)
	require.Equal(t, store.CampaignPaused, e.campaignStatus(c.ID))
}
