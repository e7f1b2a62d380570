package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// BenchmarkCampaignStats100k times `worker campaign stats` on a campaign
// of 100,000 contacts, 20,000 of them called (calls with a transcript):
//   - read_snapshot: what `campaign stats` does, one _id lookup;
//   - recount: `--recount` and the dispatcher's count, one aggregation
//     over the contacts and one over the calls;
//   - before_five_passes: the shape stats had before (three aggregations
//     and two counts), which timed out at 30 s at this size.
//
// On FerretDB every query but an _id lookup reads the whole collection,
// so the recount figures are FerretDB's scan speed; on Atlas both of its
// passes are bounded by the campaign's index entries.
func BenchmarkCampaignStats100k(b *testing.B) {
	const contacts, called = 100000, 20000
	s := newTestStore(b)
	ctx := b.Context()
	c := &Campaign{Name: "bench", Status: CampaignRunning}
	require.NoError(b, s.InsertCampaign(ctx, c))
	batch := make([]Contact, 0, 1000)
	for i := range contacts {
		batch = append(batch, Contact{CampaignID: c.ID, Phone: fmt.Sprintf("+1212%03d%04d", 200+i/10000, i%10000), Status: ContactPending,
			Name: "Practice", Variables: map[string]string{"practice_name": "Elm Street Dental", "doctor": "Patel"}})
		if len(batch) == cap(batch) {
			_, _, err := s.InsertContacts(ctx, batch)
			require.NoError(b, err)
			batch = batch[:0]
		}
	}
	calls := make([]any, 0, 1000)
	for i := range called {
		status, outcome := CallNoAnswer, "no_answer"
		var answered time.Time
		if i%3 == 0 {
			status, outcome, answered = CallCompleted, "completed", t0.Add(5*time.Second)
		}
		calls = append(calls, Call{ID: fmt.Sprintf("bench%06d-1", i), CampaignID: c.ID, ContactID: bson.NewObjectID(), Attempt: 1,
			Status: status, Outcome: outcome, CreatedAt: t0, DialingAt: t0, AnsweredAt: answered, EndedAt: t0.Add(time.Minute),
			Transcript: []Turn{{Role: "agent", Text: "Hi, this is DocShield calling for Elm Street Dental.", EndMS: 3000},
				{Role: "callee", Text: "Sure, thanks for calling, we are interested.", StartMS: 3500, EndMS: 6000}}})
		if len(calls) == cap(calls) {
			_, err := s.calls.InsertMany(ctx, calls)
			require.NoError(b, err)
			calls = calls[:0]
		}
	}
	snap, err := s.CountCampaign(ctx, c.ID)
	require.NoError(b, err)
	require.Equal(b, contacts, snap.Contacts)
	require.Equal(b, called, snap.Attempts)

	b.Run("read_snapshot", func(b *testing.B) {
		for b.Loop() {
			got, err := s.GetCampaignStats(ctx, c.ID)
			require.NoError(b, err)
			require.Equal(b, contacts, got.Contacts)
		}
	})
	b.Run("recount", func(b *testing.B) {
		for b.Loop() {
			got, err := s.CountCampaign(ctx, c.ID)
			require.NoError(b, err)
			require.Equal(b, called, got.Attempts)
		}
	})
	b.Run("before_five_passes", func(b *testing.B) {
		match := bson.D{{Key: "campaign_id", Value: c.ID}}
		for b.Loop() {
			_, err := s.countBy(ctx, s.contacts, match, "status")
			require.NoError(b, err)
			_, err = s.countBy(ctx, s.calls, match, "status")
			require.NoError(b, err)
			_, err = s.countBy(ctx, s.calls, match, "outcome")
			require.NoError(b, err)
			for _, field := range []string{"dialing_at", "answered_at"} {
				_, err := s.calls.CountDocuments(ctx, append(match, bson.E{Key: field, Value: bson.D{{Key: "$exists", Value: true}}}))
				require.NoError(b, err)
			}
		}
	})
}
