package campaign

import (
	"testing"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// backendMistakes writes contacts as a Node backend might by mistake: the
// three of issue 11 (next_attempt_at as an ISO string, campaign_id as a hex
// string, an unknown status), one that does not decode (attempts as a
// string) and one with a time zone that does not exist. All of them are
// due now.
func (e *testEnv) backendMistakes(campaign bson.ObjectID) {
	e.t.Helper()
	contact := func(phone string, fields ...bson.E) bson.D {
		d := bson.D{{Key: "campaign_id", Value: campaign}, {Key: "phone", Value: phone}, {Key: "status", Value: "pending"},
			{Key: "attempts", Value: int32(0)}}
		for _, f := range fields {
			for i := range d {
				if d[i].Key == f.Key {
					d = append(d[:i], d[i+1:]...)
					break
				}
			}
			d = append(d, f)
		}
		return d
	}
	_, err := e.st.DB().Collection(store.CollContacts).InsertMany(e.t.Context(), []any{
		contact("+12125550101", bson.E{Key: "next_attempt_at", Value: "2026-03-10T13:00:00.000Z"}),
		contact("+12125550102", bson.E{Key: "campaign_id", Value: campaign.Hex()}),
		contact("+12125550103", bson.E{Key: "status", Value: "queued"}),
		contact("+12125550104", bson.E{Key: "attempts", Value: "0"}),
		contact("+12125550105", bson.E{Key: "time_zone", Value: "America/NewYork"}),
	})
	require.NoError(e.t, err)
}

func TestDispatchLogsMistypedContactsOncePerRound(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	core, logs := observer.New(zapcore.InfoLevel)
	q := queue.NewClient(e.opt)
	t.Cleanup(func() { _ = q.Close() })
	svc := New(e.st, q, Options{Now: e.clock.Now, Owner: "w", Logger: zap.New(core)})
	c := e.campaign(nil)
	good := e.contacts(c.ID, phones(1, "")...)
	e.backendMistakes(c.ID)

	e.clock.Set(tuesday)
	r, err := svc.Round(t.Context(), c.ID)
	require.NoError(t, err, "one undecodable contact does not fail the round")
	svc.logRound(r)
	require.Equal(t, 1, r.Dispatched)
	e.requireDispatched(c.ID, 1, good...)
	require.Equal(t, store.Mistyped{CampaignIDString: 1, UnknownStatus: 1, NextAttemptAt: 1, Undecodable: 1}, r.Mistyped)

	lines := logs.FilterMessage("campaign.contacts_mistyped").All()
	require.Len(t, lines, 1, "once per round")
	f := lines[0].ContextMap()
	require.Equal(t, int64(4), f["contacts"])
	require.Equal(t, int64(1), f["next_attempt_at"])
	require.Equal(t, int64(1), f["campaign_id_string"])
	require.Equal(t, int64(1), f["unknown_status"])
	require.Equal(t, int64(1), f["undecodable"])
	require.Equal(t, zapcore.WarnLevel, lines[0].Level)
}

func TestCheckReportsMistypedAndUnreachableContacts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	c := e.campaign(nil)
	e.contacts(c.ID, phones(2, "")...)
	e.backendMistakes(c.ID)
	e.contacts(c.ID, store.Contact{Phone: "+15555550100"}) // +1 555: no known zone

	rep, err := e.svc.Check(t.Context(), c.ID, e.st)
	require.NoError(t, err)
	require.Empty(t, rep.Campaign)
	require.Equal(t, 8, rep.Contacts)
	require.Equal(t, 6, rep.ContactsWithProblems)
	require.Equal(t, map[string]int{"next_attempt_at": 1, "campaign_id": 1, "status": 1, "attempts": 1, "time_zone": 1, "phone": 1}, rep.ByField)
	byField := map[string]ContactProblem{}
	for _, p := range rep.Problems {
		byField[p.Field] = p
		require.Regexp(t, `^\+\*+\d{4}$`, p.Phone, "masked")
	}
	require.Equal(t, "is a string, want date or null", byField["next_attempt_at"].Problem)
	require.Equal(t, effectNeverDue, byField["next_attempt_at"].Effect)
	require.Equal(t, "is the campaign's id as a string, want an ObjectId", byField["campaign_id"].Problem)
	require.Equal(t, effectInvisible, byField["campaign_id"].Effect)
	require.Equal(t, effectIgnored, byField["status"].Effect)
	require.Equal(t, effectUndecoded, byField["attempts"].Effect)
	require.Equal(t, effectNoZone, byField["time_zone"].Effect)
	require.Equal(t, effectExhausted, byField["phone"].Effect)
	require.False(t, rep.Clean())

	// A campaign dispatch refuses is reported too.
	bad := e.campaign(func(c *store.Campaign) { c.Schedule.CallingHoursStart = "9:00" })
	rep, err = e.svc.Check(t.Context(), bad.ID, e.st)
	require.NoError(t, err)
	require.Len(t, rep.Campaign, 2, "%v", rep.Campaign)
	require.Contains(t, rep.Campaign[0], "schedule.calling_hours_start: does not match")
	require.Contains(t, rep.Campaign[1], effectNoCampaign)
}
