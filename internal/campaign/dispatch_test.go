package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"
)

func TestRoundCallsEachContactInsideItsOwnCallingHours(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	cs := e.contacts(c.ID,
		store.Contact{Phone: "+12125550100", TimeZone: "America/New_York"},
		store.Contact{Phone: "+13105550100", TimeZone: "America/Los_Angeles"},
		store.Contact{Phone: "+442071838750", TimeZone: "Europe/London"},
		store.Contact{Phone: "+919876543210", TimeZone: "Asia/Kolkata"},
		store.Contact{Phone: "+61299990000", TimeZone: "Australia/Sydney"},
		store.Contact{Phone: "+12125550101"}, // the campaign's default, New York
	)
	ny, la, london, kolkata, sydney, noZone := cs[0], cs[1], cs[2], cs[3], cs[4], cs[5]

	// Tue 14:00 UTC: New York 10:00, London 14:00, Kolkata 19:30 are open;
	// Los Angeles 07:00 and Sydney 01:00 (Wednesday) are not.
	r := e.roundAt(c.ID, tuesday)
	require.True(t, r.Started)
	require.Equal(t, 4, r.Dispatched)
	require.Equal(t, store.CampaignRunning, e.campaignStatus(c.ID))
	e.requireDispatched(c.ID, 1, ny, london, kolkata, noZone)
	for _, ct := range cs {
		got := e.contact(ct.ID)
		require.Equal(t, store.ContactPending, got.Status, "dispatch writes attempts, not contacts")
		require.Zero(t, got.Attempts)
	}
	for _, ct := range []store.Contact{ny, london, kolkata, noZone} {
		e.finish(AttemptID(ct.ID, 1), store.CallCompleted, OutcomeCompleted, time.Time{})
	}

	// Los Angeles is on PDT (UTC-7): 14:59 UTC is 07:59 there.
	r = e.roundAt(c.ID, utc("2026-03-10 14:59"))
	require.Zero(t, r.Dispatched, "Los Angeles at 07:59")
	r = e.roundAt(c.ID, utc("2026-03-10 15:00"))
	require.Equal(t, 1, r.Dispatched, "Los Angeles at 08:00")
	e.requireDispatched(c.ID, 1, ny, london, kolkata, noZone, la)
	e.finish(AttemptID(la.ID, 1), store.CallCompleted, OutcomeCompleted, time.Time{})

	// Sydney opens at 08:00 AEDT Wednesday, 21:00 UTC Tuesday.
	r = e.roundAt(c.ID, utc("2026-03-10 20:59"))
	require.Zero(t, r.Dispatched)
	r = e.roundAt(c.ID, utc("2026-03-10 21:00"))
	require.Equal(t, 1, r.Dispatched)
	e.requireDispatched(c.ID, 1, cs...)
	require.Len(t, e.callTasks(), 6, "one task per contact, never two")
	require.Equal(t, sydney.ID, e.attempts(c.ID)[AttemptID(sydney.ID, 1)].ContactID)
}

func TestRoundFollowsTheLocalClockAcrossDSTChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		closed, opened time.Time
	}{
		// 08:00 on the spring-forward Sunday is EDT (12:00 UTC); on EST
		// time it would have been 13:00 UTC.
		{"spring forward", utc("2026-03-08 11:59"), utc("2026-03-08 12:00")},
		// 08:00 on the fall-back Sunday is EST (13:00 UTC), an hour later
		// than the day before.
		{"fall back", utc("2026-11-01 12:59"), utc("2026-11-01 13:00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			c := e.campaign(nil)
			cs := e.contacts(c.ID, store.Contact{Phone: "+12125550100", TimeZone: "America/New_York"})
			require.Zero(t, e.roundAt(c.ID, tc.closed).Dispatched, "07:59 local")
			require.Equal(t, 1, e.roundAt(c.ID, tc.opened).Dispatched, "08:00 local")
			e.requireDispatched(c.ID, 1, cs...)
		})
	}
}

func TestRoundHonoursTheConcurrencyLimit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(func(c *store.Campaign) { c.ConcurrencyLimit = 3 })
	cs := e.contacts(c.ID, phones(8, "")...)
	at := tuesday
	round := func() RoundReport {
		at = at.Add(time.Minute)
		r := e.roundAt(c.ID, at)
		live, err := e.st.CountLiveAttempts(t.Context(), c.ID)
		require.NoError(t, err)
		require.LessOrEqual(t, live, 3, "live attempts after the round")
		return r
	}

	r := round()
	require.Equal(t, 3, r.Dispatched)
	e.requireDispatched(c.ID, 1, cs[:3]...)
	r = round()
	require.Equal(t, 3, r.Live)
	require.Zero(t, r.Dispatched, "no headroom")

	// Ringing and talking calls still count.
	claim, err := e.st.ClaimAttempt(t.Context(), AttemptID(cs[0].ID, 1), "caller", time.Minute)
	require.NoError(t, err)
	require.NoError(t, e.st.Transition(t.Context(), claim, store.CallRinging, store.CallFields{}))
	require.Zero(t, round().Dispatched)

	e.finish(AttemptID(cs[1].ID, 1), store.CallCompleted, OutcomeCompleted, time.Time{})
	e.finish(AttemptID(cs[2].ID, 1), store.CallCompleted, OutcomeCompleted, time.Time{})
	r = round()
	require.Equal(t, 1, r.Live)
	require.Equal(t, 2, r.Dispatched)
	e.requireDispatched(c.ID, 1, cs[:5]...)
	require.Len(t, e.callTasks(), 5)
}

func TestConcurrentRoundsOfOneCampaignHaveOneDispatcher(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(func(c *store.Campaign) { c.ConcurrencyLimit = 10 })
	cs := e.contacts(c.ID, phones(25, "")...)
	workers := []*Service{e.svc, e.secondWorker("worker-b"), e.secondWorker("worker-c")}

	at := tuesday
	for round := range 3 {
		reports := make([]RoundReport, len(workers))
		errs := make([]error, len(workers))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				reports[i], errs[i] = w.Round(t.Context(), c.ID)
			}()
		}
		e.clock.Set(at)
		close(start)
		wg.Wait()
		ran := 0
		for i := range workers {
			require.NoError(t, errs[i])
			if reports[i].Skipped == "" {
				ran++
			} else {
				require.Equal(t, "another worker has this round", reports[i].Skipped)
			}
		}
		require.Equal(t, 1, ran, "round %d: exactly one worker dispatches", round)
		live, err := e.st.CountLiveAttempts(t.Context(), c.ID)
		require.NoError(t, err)
		require.Equal(t, 10, live, "round %d: the limit is filled, never exceeded", round)

		// Half the calls end before the next round.
		ended := 0
		for id, a := range e.attempts(c.ID) {
			if a.Status == store.CallQueued && ended < 5 {
				e.finish(id, store.CallCompleted, OutcomeCompleted, time.Time{})
				ended++
			}
		}
		at = at.Add(time.Minute)
	}
	// 10 + 5 + 5 contacts dispatched, each exactly once.
	attempts := e.attempts(c.ID)
	require.Len(t, attempts, 20)
	perContact := map[bson.ObjectID]int{}
	for _, a := range attempts {
		perContact[a.ContactID]++
		require.Equal(t, 1, a.Attempt)
	}
	for id, n := range perContact {
		require.Equal(t, 1, n, "contact %s", id.Hex())
	}
	require.Len(t, cs, 25)
}

func TestConcurrentDispatchersBelowTheRoundLedgerStillNeverDoubleDispatch(t *testing.T) {
	t.Parallel()
	// The round ledger normally keeps a second dispatcher out. Here three
	// dispatchers run the same round's work at the same instant anyway, as
	// overlapping rounds would: the attempt id must still elect one writer
	// per contact, and only the writer enqueues.
	e := newTestEnv(t)
	c := e.campaign(func(c *store.Campaign) { c.ConcurrencyLimit = 1000; c.Status = store.CampaignRunning })
	cs := e.contacts(c.ID, phones(60, "")...)
	p, err := planFor(c)
	require.NoError(t, err)
	workers := []*Service{e.svc, e.secondWorker("worker-b"), e.secondWorker("worker-c")}

	for pass := range 3 {
		reports := make([]RoundReport, len(workers))
		errs := make([]error, len(workers))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = w.dispatch(t.Context(), p, e.clock.Now(), &reports[i])
			}()
		}
		close(start)
		wg.Wait()
		dispatched := 0
		for i := range workers {
			require.NoError(t, errs[i], "pass %d worker %d", pass, i)
			dispatched += reports[i].Dispatched
		}
		if pass == 0 {
			require.Equal(t, len(cs), dispatched, "between them, every contact once")
		} else {
			require.Zero(t, dispatched, "pass %d: nothing left to dispatch", pass)
		}
	}
	e.requireDispatched(c.ID, 1, cs...)
	require.Len(t, e.attempts(c.ID), len(cs), "exactly one attempt per contact")
	require.Len(t, e.callTasks(), len(cs), "exactly one task per contact")
	live, err := e.st.LiveAttemptContacts(t.Context(), c.ID)
	require.NoError(t, err)
	require.Len(t, live, len(cs))
	for _, ct := range cs {
		require.Contains(t, live, ct.ID)
	}
}

func TestDoNotCallNumbersAreNotDispatched(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	cs := e.contacts(c.ID, phones(3, "")...)
	require.NoError(t, e.svc.OptOut(t.Context(), cs[1].Phone, "backend"))

	r := e.roundAt(c.ID, tuesday)
	require.Equal(t, 2, r.Dispatched)
	require.Equal(t, 1, r.DoNotCall)
	e.requireDispatched(c.ID, 1, cs[0], cs[2])
	listed := e.contact(cs[1].ID)
	require.Equal(t, store.ContactDoNotCall, listed.Status)
	require.Zero(t, listed.Attempts)
	require.Len(t, e.callTasks(), 2)
}

func TestScheduledCampaignStartsWhenItsWindowOpens(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	start := tuesday.Add(2 * time.Hour)
	c := e.campaign(func(c *store.Campaign) { c.Schedule.WindowStart = start })
	cs := e.contacts(c.ID, phones(2, "")...)

	e.clock.Set(tuesday)
	r, err := e.svc.Round(t.Context(), c.ID)
	require.NoError(t, err)
	require.Contains(t, r.Skipped, "scheduled to start at 2026-03-10T16:00:00Z")
	require.Equal(t, store.CampaignScheduled, e.campaignStatus(c.ID))
	require.Empty(t, e.attempts(c.ID))

	r = e.roundAt(c.ID, start)
	require.True(t, r.Started)
	require.Equal(t, store.CampaignRunning, e.campaignStatus(c.ID))
	e.requireDispatched(c.ID, 1, cs...)
}

func TestInvalidCampaignSettingsDispatchNothing(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(func(c *store.Campaign) {
		c.Schedule.DefaultTimeZone = "Eastern"
		c.Retry.MaxAttempts = 99
	})
	e.contacts(c.ID, phones(1, "")...)
	_, err := e.svc.Round(t.Context(), c.ID)
	require.ErrorContains(t, err, `schedule.default_time_zone: time zone "Eastern"`)
	require.ErrorContains(t, err, "retry.max_attempts: 99")
	require.Empty(t, e.attempts(c.ID))
	require.Equal(t, store.CampaignScheduled, e.campaignStatus(c.ID), "not started")
	require.Error(t, ValidateCampaign(c))
}

func TestRoundRepairsLostTasksAndUnappliedOutcomes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(func(c *store.Campaign) { c.Status = store.CampaignRunning })
	cs := e.contacts(c.ID, phones(3, "")...)
	ctx := t.Context()

	// A dispatcher that died after writing attempts but before enqueueing.
	lost := []*store.Call{}
	for _, ct := range cs[:2] {
		lost = append(lost, &store.Call{ID: AttemptID(ct.ID, 1), CampaignID: c.ID, ContactID: ct.ID, Attempt: 1,
			Status: store.CallQueued, CreatedAt: tuesday, QueuedAt: tuesday})
	}
	_, err := e.st.CreateAttempts(ctx, lost)
	require.NoError(t, err)

	r := e.roundAt(c.ID, tuesday.Add(time.Minute))
	require.Zero(t, r.Requeued, "too early to call a task lost")
	require.Equal(t, 2, r.Live)
	require.Equal(t, 1, r.Dispatched, "contact 2 only: the others have live attempts")
	r = e.roundAt(c.ID, tuesday.Add(3*time.Minute))
	require.Equal(t, 2, r.Requeued)
	e.requireDispatched(c.ID, 1, cs...)
	r = e.roundAt(c.ID, tuesday.Add(4*time.Minute))
	require.Zero(t, r.Requeued, "the tasks exist now: enqueueing again is a no-op")

	// A task whose retries ran out before it claimed its attempt (MongoDB
	// down for minutes) is archived; asynq refuses its id to a new enqueue,
	// so the repair puts it back to pending.
	archived := AttemptID(cs[0].ID, 1)
	require.NoError(t, e.insp.ArchiveTask(tasks.QueueCalls, archived))
	require.NotContains(t, e.callTasks(), archived)
	r = e.roundAt(c.ID, tuesday.Add(5*time.Minute))
	require.Equal(t, 1, r.Requeued, "the archived task runs again")
	require.Equal(t, archived, e.callTasks()[archived])

	// A call that ended without its outcome being applied.
	e.endCall(AttemptID(cs[2].ID, 1), store.CallNoAnswer, false)
	r = e.roundAt(c.ID, tuesday.Add(10*time.Minute))
	require.Zero(t, r.Settled, "the call flow may still apply it")
	r = e.roundAt(c.ID, tuesday.Add(15*time.Minute))
	require.Equal(t, 1, r.Settled)
	got := e.contact(cs[2].ID)
	require.Equal(t, store.ContactPending, got.Status)
	require.Equal(t, "no_answer", got.LastOutcome)
	require.True(t, got.NextAttemptAt.After(tuesday.Add(4*time.Minute)), "retried after the backoff")

	// Attempts queued for over an hour are cancelled undialed and do not
	// use up an attempt: both contacts are dispatched again at once.
	r = e.roundAt(c.ID, tuesday.Add(61*time.Minute))
	require.Equal(t, 2, r.Expired)
	for _, ct := range cs[:2] {
		a := e.attempts(c.ID)[AttemptID(ct.ID, 1)]
		require.Equal(t, store.CallCancelled, a.Status)
		_, err := e.st.ClaimAttempt(ctx, a.ID, "late-worker", time.Minute)
		require.ErrorIs(t, err, store.ErrClaimLost, "a cancelled attempt is never dialed")
	}
	// Contact 2's no-answer backoff has passed too.
	e.requireDispatched(c.ID, 2, cs...)
}

func TestProcessTaskRunsARound(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	cs := e.contacts(c.ID, phones(2, "")...)
	task := func(payload any) *asynq.Task {
		b, err := json.Marshal(payload)
		require.NoError(t, err)
		return asynq.NewTask(tasks.TypeCampaignDispatch, b)
	}

	err := e.svc.ProcessTask(t.Context(), task(map[string]string{"campaign_id": "nope"}))
	require.ErrorIs(t, err, asynq.SkipRetry)
	require.ErrorIs(t, err, tasks.ErrInvalidPayload)
	err = e.svc.ProcessTask(t.Context(), task(tasks.CampaignDispatch{CampaignID: bson.NewObjectID().Hex()}))
	require.ErrorIs(t, err, asynq.SkipRetry, "an unknown campaign is never going to exist")
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, e.svc.ProcessTask(t.Context(), task(tasks.CampaignDispatch{CampaignID: c.ID.Hex()})))
	e.requireDispatched(c.ID, 1, cs...)
	require.NoError(t, e.svc.ProcessTask(t.Context(), task(tasks.CampaignDispatch{CampaignID: c.ID.Hex()})),
		"the same round again: nothing to do")
	require.Len(t, e.callTasks(), 2)
}

// openZoneNow picks a zone whose clock is inside 08:00–21:00 for the next
// few minutes of real time.
// daytimePhones are n numbers ringing where it is mid-afternoon now, and
// that zone: a test on the real clock places calls at any hour without
// bending the calling-hours rule (a number's own zones are checked, so the
// campaign's default zone alone does not open its hours).
func daytimePhones(t *testing.T, n int) ([]store.Contact, string) {
	t.Helper()
	sample := testenv.SampleAt(time.Now(), testenv.Afternoon)
	prefix := sample.Phone[:len(sample.Phone)-4]
	cs := make([]store.Contact, n)
	for i := range cs {
		cs[i] = store.Contact{Phone: fmt.Sprintf("%s%04d", prefix, i)}
		zones, err := phone.Zones(cs[i].Phone)
		require.NoError(t, err)
		require.Equal(t, []string{sample.Zone}, zones, "%s rings where the sample does", cs[i].Phone)
	}
	return cs, sample.Zone
}

func TestTickerDispatchesEveryRoundAndShutsDown(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	numbers, zone := daytimePhones(t, 3)
	c := e.campaign(func(c *store.Campaign) { c.Schedule.DefaultTimeZone = zone })
	cs := e.contacts(c.ID, numbers...)

	realStore := e.openStore(e.st.DB().Name())
	realStore.SetClock(time.Now)
	q := queue.NewClient(e.opt)
	t.Cleanup(func() { _ = q.Close() })
	// Short rounds; a round cut short by its deadline leaves attempts that
	// the next rounds enqueue again after RequeueAfter.
	svc := New(realStore, q, Options{Interval: 2 * time.Second, RequeueAfter: time.Second, Owner: "ticker",
		Logger: zaptest.NewLogger(t)})
	tk := svc.NewTicker()
	tk.Start()
	deadline := time.Now().Add(20 * time.Second)
	for len(e.callTasks()) < len(cs) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling Redis, bounded by the deadline
	}
	require.Len(t, e.callTasks(), len(cs), "the ticker dispatched the campaign")
	require.Equal(t, store.CampaignRunning, e.campaignStatus(c.ID))

	stopped := make(chan struct{})
	go func() {
		tk.Shutdown()
		tk.Shutdown() // twice is fine
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// flakyQueue fails every enqueue after the first ok ones.
type flakyQueue struct {
	Enqueuer
	mu sync.Mutex
	ok int
}

func (f *flakyQueue) Enqueue(ctx context.Context, p tasks.Payload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	f.mu.Lock()
	fail := f.ok <= 0
	f.ok--
	f.mu.Unlock()
	if fail {
		return nil, errors.New("redis: connection refused")
	}
	return f.Enqueuer.Enqueue(ctx, p, opts...)
}

func TestRedisFailingMidRoundLosesNoAttempt(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	cs := e.contacts(c.ID, phones(20, "")...)
	q := queue.NewClient(e.opt)
	t.Cleanup(func() { _ = q.Close() })
	flaky := &flakyQueue{Enqueuer: q, ok: 7}
	svc := New(e.st, flaky, Options{Now: e.clock.Now, Owner: "flaky", Logger: zaptest.NewLogger(t)})

	e.clock.Set(tuesday)
	_, err := svc.Round(t.Context(), c.ID)
	require.ErrorContains(t, err, "connection refused")
	require.Len(t, e.attempts(c.ID), 20, "every attempt is written before any task")
	// Enqueues run a few at once and the first failure stops the rest, so
	// some of the 7 that could succeed may have been cut short.
	before := len(e.callTasks())
	require.LessOrEqual(t, before, 7)

	// Redis is back. The attempts hold their contacts (no second attempt
	// is written) and their tasks are enqueued again once RequeueAfter has
	// passed.
	flaky.mu.Lock()
	flaky.ok = 1 << 20
	flaky.mu.Unlock()
	e.clock.Set(tuesday.Add(time.Minute))
	r, err := svc.Round(t.Context(), c.ID)
	require.NoError(t, err)
	require.Zero(t, r.Dispatched)
	e.clock.Set(tuesday.Add(3 * time.Minute))
	r, err = svc.Round(t.Context(), c.ID)
	require.NoError(t, err)
	require.Equal(t, 20-before, r.Requeued)
	e.requireDispatched(c.ID, 1, cs...)
	require.Len(t, e.attempts(c.ID), 20)
}
