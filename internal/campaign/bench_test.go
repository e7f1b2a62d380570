package campaign

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// countingStore counts calls into the store. Every method is one MongoDB
// round trip (bulk writes send their whole batch at once).
type countingStore struct {
	Store
	calls atomic.Int64
}

func (c *countingStore) count() { c.calls.Add(1) }

func (c *countingStore) GetCampaign(ctx context.Context, id bson.ObjectID) (*store.Campaign, error) {
	c.count()
	return c.Store.GetCampaign(ctx, id)
}

func (c *countingStore) SetCampaignStatus(ctx context.Context, id bson.ObjectID, from []store.CampaignStatus, to store.CampaignStatus, now time.Time) (store.CampaignStatus, error) {
	c.calls.Add(2) // read, then conditional write
	return c.Store.SetCampaignStatus(ctx, id, from, to, now)
}

func (c *countingStore) ClaimDispatchRound(ctx context.Context, r store.DispatchRound) (bool, error) {
	c.count()
	return c.Store.ClaimDispatchRound(ctx, r)
}

func (c *countingStore) PruneDispatchRounds(ctx context.Context, id bson.ObjectID, before time.Time) error {
	c.count()
	return c.Store.PruneDispatchRounds(ctx, id, before)
}

func (c *countingStore) SurveyContacts(ctx context.Context, id bson.ObjectID) (store.ContactSurvey, error) {
	c.count()
	return c.Store.SurveyContacts(ctx, id)
}

func (c *countingStore) GetCampaignStats(ctx context.Context, id bson.ObjectID) (store.StatsSnapshot, error) {
	c.count()
	return c.Store.GetCampaignStats(ctx, id)
}

func (c *countingStore) CountCampaign(ctx context.Context, id bson.ObjectID) (store.StatsSnapshot, error) {
	c.calls.Add(3) // an aggregation over contacts, one over calls, the snapshot's write
	return c.Store.CountCampaign(ctx, id)
}

func (c *countingStore) DueContacts(ctx context.Context, q store.DueQuery) (store.DuePage, error) {
	c.count()
	return c.Store.DueContacts(ctx, q)
}

func (c *countingStore) CountContacts(ctx context.Context, id bson.ObjectID, st ...store.ContactStatus) (int64, error) {
	c.count()
	return c.Store.CountContacts(ctx, id, st...)
}

func (c *countingStore) FinishPendingContacts(ctx context.Context, ids []bson.ObjectID, st store.ContactStatus, o string, now time.Time) error {
	if len(ids) > 0 {
		c.count()
	}
	return c.Store.FinishPendingContacts(ctx, ids, st, o, now)
}

func (c *countingStore) CreateAttempts(ctx context.Context, cs []*store.Call) (map[int]bool, error) {
	if len(cs) > 0 {
		c.count()
	}
	return c.Store.CreateAttempts(ctx, cs)
}

func (c *countingStore) LiveAttemptContacts(ctx context.Context, id bson.ObjectID) ([]bson.ObjectID, error) {
	c.count()
	return c.Store.LiveAttemptContacts(ctx, id)
}

func (c *countingStore) QueuedAttempts(ctx context.Context, id bson.ObjectID, before time.Time, limit int) ([]store.Call, error) {
	c.count()
	return c.Store.QueuedAttempts(ctx, id, before, limit)
}

func (c *countingStore) AttemptSummaries(ctx context.Context, ids []string) ([]store.Call, error) {
	if len(ids) > 0 {
		c.count()
	}
	return c.Store.AttemptSummaries(ctx, ids)
}

func (c *countingStore) ListedPhones(ctx context.Context, phones []string) (map[string]bool, error) {
	if len(phones) > 0 {
		c.count()
	}
	return c.Store.ListedPhones(ctx, phones)
}

// countingQueue counts enqueues; each is one Redis round trip (asynq runs
// one script per enqueue).
type countingQueue struct {
	Enqueuer
	calls atomic.Int64
}

func (c *countingQueue) Enqueue(ctx context.Context, p tasks.Payload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	c.calls.Add(1)
	return c.Enqueuer.Enqueue(ctx, p, opts...)
}

// BenchmarkDispatch10k times one round that dispatches a 10,000-contact
// campaign whose contacts are all due, from reading the campaign to the
// last task enqueued (the goal is under 5 s on the 2-core development
// machine), and reports MongoDB and Redis round trips per contact.
func BenchmarkDispatch10k(b *testing.B) {
	const n = 10000
	e := newTestEnv(b)
	st := &countingStore{Store: e.st}
	q := queue.NewClient(e.opt)
	b.Cleanup(func() { _ = q.Close() })
	cq := &countingQueue{Enqueuer: q}
	svc := New(st, cq, Options{Now: e.clock.Now, Owner: "bench"})
	contacts := make([]store.Contact, n)

	var mongo, redis int64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		c := e.campaign(func(c *store.Campaign) { c.ConcurrencyLimit = n })
		for j := range contacts {
			contacts[j] = store.Contact{CampaignID: c.ID, Phone: fmt.Sprintf("+1212%03d%04d", 200+j/10000, j%10000), Status: store.ContactPending}
		}
		for start := 0; start < n; start += 1000 {
			_, _, err := e.st.InsertContacts(b.Context(), contacts[start:start+1000])
			require.NoError(b, err)
		}
		e.clock.Set(tuesday.Add(time.Duration(i) * time.Minute))
		st.calls.Store(0)
		cq.calls.Store(0)
		b.StartTimer()

		r, err := svc.Round(b.Context(), c.ID)

		b.StopTimer()
		require.NoError(b, err)
		require.Equal(b, n, r.Dispatched)
		mongo += st.calls.Load()
		redis += cq.calls.Load()
		// FerretDB scans whole collections, so leftovers would make each
		// round slower than the one before.
		for _, coll := range []string{store.CollContacts, store.CollCalls} {
			_, err := e.st.DB().Collection(coll).DeleteMany(b.Context(), bson.D{})
			require.NoError(b, err)
		}
		b.StartTimer()
	}
	rounds := float64(b.N)
	b.ReportMetric(float64(mongo)/rounds/n, "mongo-roundtrips/contact")
	b.ReportMetric(float64(redis)/rounds/n, "redis-roundtrips/contact")
}
