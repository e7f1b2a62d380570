package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/phone"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Reads for support questions ("they called me twice"): a number's
// contacts, their attempts and the number's one-off calls, and each
// campaign contact's raw document for `worker campaign check`.

// AttemptSummary is one attempt as support reads it: what happened and
// why, without the transcript.
type AttemptSummary struct {
	ID         string        `bson:"_id" json:"attempt_id"`
	CampaignID bson.ObjectID `bson:"campaign_id,omitempty" json:"campaign_id,omitzero"`
	ContactID  bson.ObjectID `bson:"contact_id,omitempty" json:"contact_id,omitzero"`
	Attempt    int           `bson:"attempt" json:"attempt"`
	Status     CallStatus    `bson:"status" json:"status"`
	Outcome    string        `bson:"outcome,omitempty" json:"outcome,omitempty"`
	// EndReason, Error and WaitingReason are the reasons the worker
	// recorded: why it ended, what failed, why it waited.
	EndReason     string    `bson:"end_reason,omitempty" json:"end_reason,omitempty"`
	Error         string    `bson:"error,omitempty" json:"error,omitempty"`
	WaitingReason string    `bson:"waiting_reason,omitempty" json:"waiting_reason,omitempty"`
	WaitingUntil  time.Time `bson:"waiting_until,omitempty" json:"waiting_until,omitzero"`
	CreatedAt     time.Time `bson:"created_at,omitempty" json:"created_at,omitzero"`
	DialingAt     time.Time `bson:"dialing_at,omitempty" json:"dialing_at,omitzero"`
	AnsweredAt    time.Time `bson:"answered_at,omitempty" json:"answered_at,omitzero"`
	EndedAt       time.Time `bson:"ended_at,omitempty" json:"ended_at,omitzero"`
}

var attemptSummaryFields = bson.D{
	{Key: "campaign_id", Value: 1}, {Key: "contact_id", Value: 1}, {Key: "attempt", Value: 1},
	{Key: "status", Value: 1}, {Key: "outcome", Value: 1}, {Key: "end_reason", Value: 1}, {Key: "error", Value: 1},
	{Key: "waiting_reason", Value: 1}, {Key: "waiting_until", Value: 1}, {Key: "created_at", Value: 1},
	{Key: "dialing_at", Value: 1}, {Key: "answered_at", Value: 1}, {Key: "ended_at", Value: 1},
}

// ContactsByPhone lists the contacts with this number, in every campaign,
// oldest first. The number must be E.164.
func (s *Store) ContactsByPhone(ctx context.Context, number string) ([]Contact, error) {
	if !phone.Valid(number) {
		return nil, errors.New("store: contacts by phone: the number is not E.164")
	}
	var out []Contact
	err := s.findAll(ctx, s.contacts, bson.D{{Key: "phone", Value: number}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}), &out)
	if err != nil {
		return nil, fmt.Errorf("store: contacts by phone: %w", err)
	}
	return out, nil
}

// AttemptsOfContact lists a contact's attempts by number.
func (s *Store) AttemptsOfContact(ctx context.Context, contactID bson.ObjectID) ([]AttemptSummary, error) {
	return s.attemptSummaries(ctx, bson.D{{Key: "contact_id", Value: contactID}}, "attempts of contact "+contactID.Hex())
}

// InlineCallsByPhone lists the one-off calls to this number, oldest first.
func (s *Store) InlineCallsByPhone(ctx context.Context, number string) ([]AttemptSummary, error) {
	if !phone.Valid(number) {
		return nil, errors.New("store: calls by phone: the number is not E.164")
	}
	return s.attemptSummaries(ctx, bson.D{{Key: "phone", Value: number}}, "one-off calls by phone")
}

func (s *Store) attemptSummaries(ctx context.Context, filter bson.D, what string) ([]AttemptSummary, error) {
	var out []AttemptSummary
	err := s.findAll(ctx, s.calls, filter,
		options.Find().SetProjection(attemptSummaryFields).SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}), &out)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// GetDoNotCall reads the do-not-call entry of a number; ErrNotFound when
// it is not listed.
func (s *Store) GetDoNotCall(ctx context.Context, number string) (DoNotCall, error) {
	var d DoNotCall
	err := s.dnc.FindOne(ctx, bson.D{{Key: "phone", Value: number}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return d, fmt.Errorf("store: do-not-call entry: %w", ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("store: do-not-call entry: %w", err)
	}
	return d, nil
}

// EachCampaignContact calls fn with the raw document of every contact
// filed under the campaign, including those whose campaign_id is the
// campaign's id written as a hex string, in _id order. Raw, because the
// point is to look at documents that may not decode.
func (s *Store) EachCampaignContact(ctx context.Context, campaignID bson.ObjectID, fn func(bson.Raw) error) error {
	cur, err := s.contacts.Find(ctx,
		bson.D{{Key: "campaign_id", Value: bson.D{{Key: "$in", Value: bson.A{campaignID, campaignID.Hex()}}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("store: contacts of campaign %s: %w", campaignID.Hex(), err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if err := fn(cur.Current); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("store: contacts of campaign %s: %w", campaignID.Hex(), err)
	}
	return nil
}

// GetCampaignDocument reads a campaign as stored, for checks that must see
// fields of the wrong type.
func (s *Store) GetCampaignDocument(ctx context.Context, id bson.ObjectID) (bson.Raw, error) {
	raw, err := s.campaigns.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("store: get campaign %s: %w", id.Hex(), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get campaign %s: %w", id.Hex(), err)
	}
	return raw, nil
}
