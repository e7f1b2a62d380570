package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// CollDispatchRounds holds one document per campaign and dispatch round.
// Inserting it elects the round's only dispatcher across workers: an insert
// is decided by the unique _id on every server, unlike a conditional update
// on FerretDB (see the package doc).
const CollDispatchRounds = "dispatch_rounds"

// DispatchRound records who dispatches one campaign in one round. Its ID is
// "<campaign id hex>-<round number>", the round number being the start of
// the round in seconds divided by the round length.
type DispatchRound struct {
	ID         string        `bson:"_id"`
	CampaignID bson.ObjectID `bson:"campaign_id"`
	Owner      string        `bson:"owner"`
	StartedAt  time.Time     `bson:"started_at"`
}

// InsertCampaign writes a new campaign, giving it an id when it has none.
// The campaign backend normally writes campaigns; tools and tests use this.
func (s *Store) InsertCampaign(ctx context.Context, c *Campaign) error {
	if c == nil {
		return errors.New("store: insert campaign: Campaign is nil")
	}
	if c.ID.IsZero() {
		c.ID = bson.NewObjectID()
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.clock()
	}
	if _, err := s.campaigns.InsertOne(ctx, c); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("store: insert campaign %s: %w", c.ID.Hex(), ErrDuplicate)
		}
		return fmt.Errorf("store: insert campaign %s: %w", c.ID.Hex(), err)
	}
	return nil
}

// GetCampaign reads one campaign.
func (s *Store) GetCampaign(ctx context.Context, id bson.ObjectID) (*Campaign, error) {
	var c Campaign
	err := s.campaigns.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("store: get campaign %s: %w", id.Hex(), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get campaign %s: %w", id.Hex(), err)
	}
	return &c, nil
}

// CampaignIDsByStatus lists the ids of campaigns in any of statuses, oldest
// first.
func (s *Store) CampaignIDsByStatus(ctx context.Context, statuses ...CampaignStatus) ([]bson.ObjectID, error) {
	var found []struct {
		ID bson.ObjectID `bson:"_id"`
	}
	err := s.findAll(ctx, s.campaigns,
		bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: statuses}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetSort(bson.D{{Key: "_id", Value: 1}}),
		&found)
	if err != nil {
		return nil, fmt.Errorf("store: list campaigns by status: %w", err)
	}
	ids := make([]bson.ObjectID, len(found))
	for i, f := range found {
		ids[i] = f.ID
	}
	return ids, nil
}

// SetCampaignStatus moves a campaign whose status is one of from to status
// to, and returns the status it had. A campaign in another status is left
// alone and ErrInvalidTransition is returned, naming the status it is in.
//
// On FerretDB the conditional write is not atomic (see the package doc), so
// the worker writes a campaign's status rarely (scheduled → running, running
// → completed) and never writes counters to the campaign document, which
// keeps the window for overwriting an operator's pause tiny.
func (s *Store) SetCampaignStatus(ctx context.Context, id bson.ObjectID, from []CampaignStatus, to CampaignStatus, now time.Time) (CampaignStatus, error) {
	op := fmt.Sprintf("store: set campaign %s to %s", id.Hex(), to)
	cur, err := s.campaignStatus(ctx, id)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	if !slices.Contains(from, cur) {
		return cur, fmt.Errorf("%s: %w: campaign is %s, want one of %v", op, ErrInvalidTransition, cur, from)
	}
	res, err := s.campaigns.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "status", Value: cur}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: to}, {Key: "updated_at", Value: now.UTC()}}}})
	if err != nil {
		return cur, fmt.Errorf("%s: %w", op, err)
	}
	if res.MatchedCount == 0 {
		// Changed between our read and our write; report what it is now.
		now, err := s.campaignStatus(ctx, id)
		if err != nil {
			return cur, fmt.Errorf("%s: %w", op, err)
		}
		return now, fmt.Errorf("%s: %w: campaign became %s meanwhile", op, ErrInvalidTransition, now)
	}
	return cur, nil
}

func (s *Store) campaignStatus(ctx context.Context, id bson.ObjectID) (CampaignStatus, error) {
	var cur struct {
		Status CampaignStatus `bson:"status"`
	}
	err := s.campaigns.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "status", Value: 1}})).Decode(&cur)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read status: %w", err)
	}
	return cur.Status, nil
}

// ClaimDispatchRound makes r.Owner the only dispatcher of r's campaign in
// r's round. It reports false, without error, when another dispatcher
// already has the round.
func (s *Store) ClaimDispatchRound(ctx context.Context, r DispatchRound) (bool, error) {
	if r.ID == "" || r.CampaignID.IsZero() || r.Owner == "" {
		return false, errors.New("store: claim dispatch round: DispatchRound.ID, CampaignID and Owner are required")
	}
	r.StartedAt = r.StartedAt.UTC()
	_, err := s.db.Collection(CollDispatchRounds).InsertOne(ctx, r)
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: claim dispatch round %q: %w", r.ID, err)
	}
	return true, nil
}

// PruneDispatchRounds deletes a campaign's round records that started before
// before. Old rounds are never contended, so deleting them cannot hand a
// running round to a second dispatcher.
func (s *Store) PruneDispatchRounds(ctx context.Context, campaignID bson.ObjectID, before time.Time) error {
	_, err := s.db.Collection(CollDispatchRounds).DeleteMany(ctx, bson.D{
		{Key: "campaign_id", Value: campaignID},
		{Key: "started_at", Value: bson.D{{Key: "$lt", Value: before.UTC()}}},
	})
	if err != nil {
		return fmt.Errorf("store: prune dispatch rounds of campaign %s: %w", campaignID.Hex(), err)
	}
	return nil
}
