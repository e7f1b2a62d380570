package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// liveCallStatuses are the statuses that hold one of a campaign's
// concurrency slots: written but not yet ended.
var liveCallStatuses = append([]CallStatus{CallQueued}, activeCallStatuses...)

// CreateAttempts inserts queued campaign attempts in one round trip and
// reports which of them (by position) already existed. The attempt id is
// the election: of several dispatchers writing the same attempt, exactly
// one insert succeeds.
func (s *Store) CreateAttempts(ctx context.Context, cs []*Call) (duplicate map[int]bool, err error) {
	if len(cs) == 0 {
		return nil, nil
	}
	docs := make([]any, len(cs))
	for i, c := range cs {
		switch {
		case c == nil || c.ID == "":
			return nil, fmt.Errorf("store: create attempts: attempt %d: Call.ID is empty", i)
		case c.CampaignID.IsZero() || c.ContactID.IsZero():
			return nil, fmt.Errorf("store: create attempts: attempt %q: Call.CampaignID and Call.ContactID are required", c.ID)
		case c.Status != CallQueued:
			return nil, fmt.Errorf("store: create attempts: attempt %q: Call.Status is %q, want %q", c.ID, c.Status, CallQueued)
		case c.CreatedAt.IsZero() || c.QueuedAt.IsZero():
			return nil, fmt.Errorf("store: create attempts: attempt %q: Call.CreatedAt and Call.QueuedAt are required", c.ID)
		}
		docs[i] = c
	}
	_, err = s.calls.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	dups, err := duplicateIndexes(err)
	if err != nil {
		return nil, fmt.Errorf("store: create %d attempts: %w", len(cs), err)
	}
	return dups, nil
}

// CountLiveAttempts counts a campaign's attempts that are queued or in a
// call: the ones its concurrency limit applies to.
func (s *Store) CountLiveAttempts(ctx context.Context, campaignID bson.ObjectID) (int, error) {
	n, err := s.calls.CountDocuments(ctx, bson.D{
		{Key: "campaign_id", Value: campaignID},
		{Key: "status", Value: bson.D{{Key: "$in", Value: liveCallStatuses}}},
	})
	if err != nil {
		return 0, fmt.Errorf("store: count live attempts of campaign %s: %w", campaignID.Hex(), err)
	}
	return int(n), nil
}

// LiveAttemptContacts returns the contacts of a campaign's live attempts
// (queued or in a call): they hold the campaign's concurrency slots, and
// are not due for another attempt.
func (s *Store) LiveAttemptContacts(ctx context.Context, campaignID bson.ObjectID) ([]bson.ObjectID, error) {
	var found []struct {
		ContactID bson.ObjectID `bson:"contact_id"`
	}
	err := s.findAll(ctx, s.calls, bson.D{
		{Key: "campaign_id", Value: campaignID},
		{Key: "status", Value: bson.D{{Key: "$in", Value: liveCallStatuses}}},
	}, options.Find().SetProjection(bson.D{{Key: "contact_id", Value: 1}}), &found)
	if err != nil {
		return nil, fmt.Errorf("store: live attempts of campaign %s: %w", campaignID.Hex(), err)
	}
	ids := make([]bson.ObjectID, len(found))
	for i, f := range found {
		ids[i] = f.ContactID
	}
	return ids, nil
}

// QueuedAttempts returns up to limit of a campaign's attempts that have been
// queued since before queuedBefore, oldest first, with their id, attempt
// number, contact and queue time.
func (s *Store) QueuedAttempts(ctx context.Context, campaignID bson.ObjectID, queuedBefore time.Time, limit int) ([]Call, error) {
	var out []Call
	err := s.findAll(ctx, s.calls, bson.D{
		{Key: "campaign_id", Value: campaignID},
		{Key: "status", Value: CallQueued},
		{Key: "queued_at", Value: bson.D{{Key: "$lt", Value: queuedBefore.UTC()}}},
	}, options.Find().
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "attempt", Value: 1}, {Key: "contact_id", Value: 1},
			{Key: "campaign_id", Value: 1}, {Key: "status", Value: 1}, {Key: "queued_at", Value: 1}}).
		SetSort(bson.D{{Key: "queued_at", Value: 1}}).
		SetLimit(int64(limit)), &out)
	if err != nil {
		return nil, fmt.Errorf("store: queued attempts of campaign %s: %w", campaignID.Hex(), err)
	}
	return out, nil
}

// AttemptSummaries reads the given attempts without their transcripts and
// tool calls, which can be large. Missing ids are left out.
func (s *Store) AttemptSummaries(ctx context.Context, ids []string) ([]Call, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out []Call
	// One id, the common case (each outcome asks for the attempt after
	// it), by equality: the same index lookup on MongoDB, and the only
	// form the local FerretDB hands to its database; it filters $in itself
	// after reading the whole collection, once per call ended.
	var id any = bson.D{{Key: "$in", Value: ids}}
	if len(ids) == 1 {
		id = ids[0]
	}
	err := s.findAll(ctx, s.calls,
		bson.D{{Key: "_id", Value: id}},
		options.Find().SetProjection(bson.D{
			{Key: "transcript", Value: 0}, {Key: "tool_calls", Value: 0}, {Key: "latencies_ms", Value: 0},
		}), &out)
	if err != nil {
		return nil, fmt.Errorf("store: read %d attempts: %w", len(ids), err)
	}
	return out, nil
}

// CountDialedAttempts counts a contact's attempts that went to the phone
// network: everything but attempts still queued or cancelled before
// dialing. This is what a retry policy's attempt limit counts.
func (s *Store) CountDialedAttempts(ctx context.Context, contactID bson.ObjectID) (int, error) {
	n, err := s.calls.CountDocuments(ctx, bson.D{
		{Key: "contact_id", Value: contactID},
		{Key: "status", Value: bson.D{{Key: "$nin", Value: []CallStatus{CallQueued, CallCancelled}}}},
	})
	if err != nil {
		return 0, fmt.Errorf("store: count dialed attempts of contact %s: %w", contactID.Hex(), err)
	}
	return int(n), nil
}

// cancelLease is how long a cancellation's ledger entry keeps claimers
// waiting (ErrClaimPending) before they may settle the attempt themselves.
const cancelLease = time.Minute

// CancelQueuedAttempt ends a queued attempt as cancelled so that it is never
// dialed, and reports whether it did. It takes the attempt's claim first,
// exactly as a worker about to dial would: if a worker already claimed the
// attempt, the call is that worker's and this returns false.
func (s *Store) CancelQueuedAttempt(ctx context.Context, attemptID, reason string, now time.Time) (bool, error) {
	if attemptID == "" {
		return false, errors.New("store: cancel attempt: attemptID is empty")
	}
	now = now.UTC().Truncate(time.Millisecond)
	fence, err := newFence()
	if err != nil {
		return false, fmt.Errorf("store: cancel attempt %q: %w", attemptID, err)
	}
	_, err = s.claims.InsertOne(ctx, claimRecord{
		ID: attemptID, Owner: "campaign:cancel", Fence: fence, ClaimedAt: now, LeaseExpiresAt: now.Add(cancelLease),
	})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: cancel attempt %q: write claim: %w", attemptID, err)
	}
	ok, err := s.setWhileQueued(ctx, attemptID, bson.D{
		{Key: "status", Value: CallCancelled},
		{Key: "ended_at", Value: now},
		{Key: "error", Value: reason},
	})
	if err != nil {
		// The claim is ours, so nobody dials it; once cancelLease passes,
		// the next claimer or the reaper settles it as cancelled.
		return false, fmt.Errorf("store: cancel attempt %q: %w", attemptID, err)
	}
	return ok, nil
}

// countBy groups coll's documents matching match by field and counts each
// group; documents without the field count under "".
func (s *Store) countBy(ctx context.Context, coll *mongo.Collection, match bson.D, field string) (map[string]int, error) {
	cur, err := coll.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: match}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + field}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("store: count %s by %s: %w", coll.Name(), field, err)
	}
	var groups []struct {
		Key any `bson:"_id"`
		N   int `bson:"n"`
	}
	if err := cur.All(ctx, &groups); err != nil {
		return nil, fmt.Errorf("store: count %s by %s: %w", coll.Name(), field, err)
	}
	out := make(map[string]int, len(groups))
	for _, g := range groups {
		key, _ := g.Key.(string)
		out[key] += g.N
	}
	return out, nil
}
