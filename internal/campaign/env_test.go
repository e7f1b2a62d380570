package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"
)

// testEnv is one test's database, private Redis and Service, all on one
// fake clock.
type testEnv struct {
	t     testing.TB
	st    *store.Store
	opt   asynq.RedisClientOpt
	insp  *asynq.Inspector
	clock *testenv.Clock // the time every part of a test sees; tests move it
	svc   *Service
}

// tuesday is Tue 2026-03-10 14:00 UTC: 10:00 in New York, 07:00 in Los
// Angeles, 14:00 in London, 19:30 in Kolkata, 01:00 Wednesday in Sydney.
var tuesday = utc("2026-03-10 14:00")

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	e := &testEnv{t: t, clock: testenv.NewClock(tuesday)}
	e.st = e.openStore(testenv.UniqueName(t))
	require.NoError(t, e.st.EnsureIndexes(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, e.st.DB().Drop(ctx))
	})
	r := testenv.StartRedis(t)
	e.opt = asynq.RedisClientOpt{Addr: r.Addr()}
	e.insp = asynq.NewInspector(e.opt)
	t.Cleanup(func() { _ = e.insp.Close() })
	e.svc = e.newService("test-worker", e.st)
	return e
}

// openStore connects to db on the stack's server, on the test's clock.
func (e *testEnv) openStore(db string) *store.Store {
	e.t.Helper()
	st, err := store.Open(e.t.Context(), store.Options{URI: testenv.MongoURI(e.t), Database: db, ServerSelectionTimeout: 20 * time.Second})
	require.NoError(e.t, err)
	st.SetClock(e.clock.Now)
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(e.t, st.Close(ctx))
	})
	return st
}

// newService is another worker: its own Redis client, on st.
func (e *testEnv) newService(owner string, st *store.Store) *Service {
	q := queue.NewClient(e.opt)
	e.t.Cleanup(func() { _ = q.Close() })
	return New(st, q, Options{Now: e.clock.Now, Owner: owner, Logger: zaptest.NewLogger(e.t)})
}

// secondWorker is a Service with its own MongoDB and Redis connections.
func (e *testEnv) secondWorker(owner string) *Service {
	return e.newService(owner, e.openStore(e.st.DB().Name()))
}

var everyDayHours = store.Schedule{
	CallingHoursStart: "08:00", CallingHoursEnd: "21:00",
	CallingDays:     []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"},
	DefaultTimeZone: "America/New_York",
}

// campaign writes a scheduled campaign (08:00–21:00 every day, New York by
// default, up to 100 at once), changed by edit.
func (e *testEnv) campaign(edit func(c *store.Campaign)) *store.Campaign {
	e.t.Helper()
	c := &store.Campaign{
		Name: e.t.Name(), Status: store.CampaignScheduled, Schedule: everyDayHours, ConcurrencyLimit: 100,
		Agent: store.AgentConfig{InstructionsTemplate: "Hello {{name}}"},
	}
	if edit != nil {
		edit(c)
	}
	require.NoError(e.t, e.st.InsertCampaign(e.t.Context(), c))
	return c
}

// contacts adds pending contacts to campaign and returns them in _id order.
func (e *testEnv) contacts(campaign bson.ObjectID, cs ...store.Contact) []store.Contact {
	e.t.Helper()
	for i := range cs {
		cs[i].CampaignID = campaign
		if cs[i].Status == "" {
			cs[i].Status = store.ContactPending
		}
	}
	n, _, err := e.st.InsertContacts(e.t.Context(), cs)
	require.NoError(e.t, err)
	require.Equal(e.t, len(cs), n)
	var out []store.Contact
	for _, c := range cs {
		var got store.Contact
		require.NoError(e.t, e.st.DB().Collection(store.CollContacts).FindOne(e.t.Context(),
			bson.D{{Key: "campaign_id", Value: campaign}, {Key: "phone", Value: c.Phone}}).Decode(&got))
		out = append(out, got)
	}
	return out
}

// phones makes n contacts with distinct New York numbers (calling hours
// hold where the number rings too), filed under zone.
func phones(n int, zone string) []store.Contact {
	cs := make([]store.Contact, n)
	for i := range cs {
		cs[i] = store.Contact{Phone: fmt.Sprintf("+1212555%04d", i), TimeZone: zone}
	}
	return cs
}

// roundAt moves the clock to at and runs a round, which must not be
// skipped (each round number is claimed once).
func (e *testEnv) roundAt(id bson.ObjectID, at time.Time) RoundReport {
	e.t.Helper()
	e.clock.Set(at)
	r, err := e.svc.Round(e.t.Context(), id)
	require.NoError(e.t, err)
	require.Empty(e.t, r.Skipped, "round at %s", at)
	return r
}

func (e *testEnv) contact(id bson.ObjectID) *store.Contact {
	e.t.Helper()
	c, err := e.st.GetContact(e.t.Context(), id)
	require.NoError(e.t, err)
	return c
}

func (e *testEnv) campaignStatus(id bson.ObjectID) store.CampaignStatus {
	e.t.Helper()
	c, err := e.st.GetCampaign(e.t.Context(), id)
	require.NoError(e.t, err)
	return c.Status
}

// attempts lists a campaign's attempts by id.
func (e *testEnv) attempts(campaign bson.ObjectID) map[string]store.Call {
	e.t.Helper()
	cur, err := e.st.DB().Collection(store.CollCalls).Find(e.t.Context(), bson.D{{Key: "campaign_id", Value: campaign}})
	require.NoError(e.t, err)
	var calls []store.Call
	require.NoError(e.t, cur.All(e.t.Context(), &calls))
	out := map[string]store.Call{}
	for _, c := range calls {
		out[c.ID] = c
	}
	return out
}

// callTasks lists the call:outbound tasks waiting in Redis: task id →
// the payload's attempt id.
func (e *testEnv) callTasks() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for page := 1; ; page++ {
		infos, err := e.insp.ListPendingTasks(tasks.QueueCalls, asynq.Page(page), asynq.PageSize(1000))
		if errors.Is(err, asynq.ErrQueueNotFound) || (err != nil && strings.Contains(err.Error(), "does not exist")) {
			return out
		}
		require.NoError(e.t, err)
		for _, info := range infos {
			require.Equal(e.t, tasks.TypeCallOutbound, info.Type)
			var p tasks.CallOutbound
			require.NoError(e.t, json.Unmarshal(info.Payload, &p))
			out[info.ID] = p.AttemptID
		}
		if len(infos) < 1000 {
			return out
		}
	}
}

// requireDispatched checks that exactly these contacts have attempts, one
// each, numbered n, and one task each whose id is the attempt id.
func (e *testEnv) requireDispatched(campaign bson.ObjectID, n int, contacts ...store.Contact) {
	e.t.Helper()
	var want []string
	for _, c := range contacts {
		want = append(want, AttemptID(c.ID, n))
	}
	sort.Strings(want)
	var got []string
	for id, a := range e.attempts(campaign) {
		if a.Attempt == n {
			got = append(got, id)
		}
	}
	sort.Strings(got)
	require.Equal(e.t, want, got, "attempts numbered %d", n)
	taskList := e.callTasks()
	for _, id := range want {
		require.Equal(e.t, id, taskList[id], "task for attempt %s", id)
	}
}

// endCall plays the call flow for an attempt: claim, optionally answer,
// end with status, and return the ended attempt.
func (e *testEnv) endCall(attemptID string, status store.CallStatus, answered bool) *store.Call {
	e.t.Helper()
	ctx := e.t.Context()
	claim, err := e.st.ClaimAttempt(ctx, attemptID, "test-caller", time.Minute)
	require.NoError(e.t, err)
	if answered {
		require.NoError(e.t, e.st.Transition(ctx, claim, store.CallInProgress, store.CallFields{}))
	}
	require.NoError(e.t, e.st.Transition(ctx, claim, status, store.CallFields{}))
	c, err := e.st.GetCall(ctx, attemptID)
	require.NoError(e.t, err)
	return c
}

// finish ends an attempt and applies its outcome, as the call flow does.
func (e *testEnv) finish(attemptID string, status store.CallStatus, outcome Outcome, callbackAt time.Time) Result {
	e.t.Helper()
	c := e.endCall(attemptID, status, status == store.CallCompleted)
	res, err := e.svc.ApplyOutcome(e.t.Context(), c, string(outcome), callbackAt)
	require.NoError(e.t, err)
	return res
}
