package analysis

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap/zaptest"
)

// tuesday is Tue 2026-03-10 14:00 UTC, 10:00 in New York.
var tuesday = time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)

// testEnv is one test's database, chat simulator and Service on a fixed
// clock, with a real campaign.Service behind a call-counting wrapper.
type testEnv struct {
	t        testing.TB
	st       *store.Store
	sim      *chatsim.Server
	svc      *Service
	outcomes *countingOutcomes
	camp     *store.Campaign
	now      time.Time
}

func newTestEnv(t testing.TB, script chatsim.Script, edit func(o *Options)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, now: tuesday}
	st, err := store.Open(t.Context(), store.Options{
		URI: testenv.MongoURI(t), Database: testenv.UniqueName(t), ServerSelectionTimeout: 20 * time.Second,
	})
	require.NoError(t, err)
	st.SetClock(func() time.Time { return e.now })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, st.DB().Drop(ctx))
		require.NoError(t, st.Close(ctx))
	})
	require.NoError(t, st.EnsureIndexes(t.Context()))
	e.st = st

	var chat *Client
	e.sim, chat = startSim(t, script)
	e.outcomes = &countingOutcomes{next: campaign.New(st, nil, campaign.Options{Now: func() time.Time { return e.now }})}
	o := Options{Model: "gpt-4o-mini", Outcomes: e.outcomes, Now: func() time.Time { return e.now }}
	if edit != nil {
		edit(&o)
	}
	e.svc, err = New(st, chat, o)
	require.NoError(t, err)

	e.camp = &store.Campaign{
		Name: t.Name(), Status: store.CampaignRunning, ConcurrencyLimit: 10,
		Agent: store.AgentConfig{InstructionsTemplate: "Hello {{name}}"},
		Schedule: store.Schedule{
			CallingHoursStart: "08:00", CallingHoursEnd: "21:00", DefaultTimeZone: "America/New_York",
			CallingDays: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"},
		},
	}
	require.NoError(t, st.InsertCampaign(t.Context(), e.camp))
	return e
}

// ctx carries a test logger, as the worker's middleware does.
func (e *testEnv) ctx() context.Context {
	return logging.WithContext(e.t.Context(), zaptest.NewLogger(e.t))
}

// setSpec writes the campaign's analysis subdocument as the backend would.
func (e *testEnv) setSpec(spec any) {
	e.t.Helper()
	_, err := e.st.DB().Collection(store.CollCampaigns).UpdateOne(e.t.Context(),
		bson.D{{Key: "_id", Value: e.camp.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "analysis", Value: spec}}}})
	require.NoError(e.t, err)
}

// contact adds a pending contact to the campaign.
func (e *testEnv) contact(phone string) *store.Contact {
	e.t.Helper()
	c := store.Contact{ID: bson.NewObjectID(), CampaignID: e.camp.ID, Phone: phone, Status: store.ContactPending}
	n, _, err := e.st.InsertContacts(e.t.Context(), []store.Contact{c})
	require.NoError(e.t, err)
	require.Equal(e.t, 1, n)
	return &c
}

// call describes an attempt for endedAttempt.
type call struct {
	status  store.CallStatus
	outcome string
	turns   []store.Turn
	tools   []store.ToolCall
}

// conversation is a short call in which the callee spoke.
var conversation = []store.Turn{
	{Role: "agent", Text: "Hi, this is DocShield calling for Elm Street Dental.", StartMS: 500, EndMS: 3000},
	{Role: "callee", Text: "Hi, this is Maria, the office manager. We might be interested; call back Thursday after two.", StartMS: 3500, EndMS: 8000},
	{Role: "agent", Text: "Thank you Maria, I will. Goodbye.", StartMS: 8500, EndMS: 10000},
}

// endedAttempt writes attempt 1 of ct (a new contact when nil) and runs it
// through the store's lifecycle to its terminal status, as the call flow
// does. It returns the attempt id.
func (e *testEnv) endedAttempt(ct *store.Contact, c call) string {
	e.t.Helper()
	ctx := e.t.Context()
	if ct == nil {
		ct = e.contact("+12125550100")
	}
	id := campaign.AttemptID(ct.ID, 1)
	require.NoError(e.t, e.st.CreateAttempt(ctx, &store.Call{ID: id, CampaignID: e.camp.ID, ContactID: ct.ID, Attempt: 1}))
	claim, err := e.st.ClaimAttempt(ctx, id, "test-worker", time.Hour)
	require.NoError(e.t, err)
	if len(c.turns) > 0 || c.status == store.CallCompleted {
		require.NoError(e.t, e.st.Transition(ctx, claim, store.CallInProgress, store.CallFields{}))
	}
	for _, turn := range c.turns {
		require.NoError(e.t, e.st.AppendTurns(ctx, claim, turn))
	}
	for _, tc := range c.tools {
		require.NoError(e.t, e.st.AppendToolCall(ctx, claim, tc))
	}
	if c.status != "" {
		require.NoError(e.t, e.st.Transition(ctx, claim, c.status, store.CallFields{Outcome: c.outcome}))
	}
	return id
}

// callDoc reads the raw call document.
func (e *testEnv) callDoc(id string) bson.M {
	e.t.Helper()
	var m bson.M
	require.NoError(e.t, e.st.DB().Collection(store.CollCalls).FindOne(e.t.Context(), bson.D{{Key: "_id", Value: id}}).Decode(&m))
	return m
}

func (e *testEnv) result(id string) store.AnalysisResult {
	e.t.Helper()
	r, err := e.st.GetAnalysisResult(e.t.Context(), id)
	require.NoError(e.t, err)
	return r
}

// countingOutcomes passes SettleEnded on and records the outcomes that
// moved a contact.
type countingOutcomes struct {
	next  Outcomes
	mu    sync.Mutex
	calls []appliedOutcome
}

type appliedOutcome struct {
	attemptID, outcome string
	callbackAt         time.Time
}

func (c *countingOutcomes) SettleEnded(ctx context.Context, a *store.Call, callbackAt time.Time) (campaign.Result, error) {
	res, err := c.next.SettleEnded(ctx, a, callbackAt)
	if err == nil && res.Decision.Status != "" {
		c.mu.Lock()
		c.calls = append(c.calls, appliedOutcome{a.ID, string(campaign.OutcomeOf(a)), callbackAt})
		c.mu.Unlock()
	}
	return res, err
}

func (c *countingOutcomes) applied() []appliedOutcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]appliedOutcome(nil), c.calls...)
}
