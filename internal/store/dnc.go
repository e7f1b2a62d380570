package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/docshield/voice-worker/internal/phone"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// AddDoNotCall records that d.Phone must never be dialed again. Adding a
// number that is already listed keeps the first entry (its reason, source
// and time) and succeeds.
func (s *Store) AddDoNotCall(ctx context.Context, d DoNotCall) error {
	if !phone.Valid(d.Phone) {
		return errors.New("store: add do-not-call: DoNotCall.Phone is not E.164")
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.clock()
	}
	_, err := s.dnc.UpdateOne(ctx,
		bson.D{{Key: "phone", Value: d.Phone}},
		bson.D{{Key: "$setOnInsert", Value: bson.D{
			{Key: "reason", Value: d.Reason},
			{Key: "source", Value: d.Source},
			{Key: "created_at", Value: d.CreatedAt.UTC()},
		}}},
		options.UpdateOne().SetUpsert(true))
	// Two concurrent upserts of a new number can both try the insert; the
	// unique phone index rejects the second, which means it is listed.
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("store: add do-not-call: %w", err)
	}
	return nil
}

// IsDoNotCall reports whether number is on the do-not-call list. A number
// that is not E.164 is an error rather than "not listed", so a formatting
// mistake can never let a listed number through.
func (s *Store) IsDoNotCall(ctx context.Context, number string) (bool, error) {
	if !phone.Valid(number) {
		return false, errors.New("store: check do-not-call: phone is not E.164")
	}
	err := s.dnc.FindOne(ctx, bson.D{{Key: "phone", Value: number}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: check do-not-call: %w", err)
	}
	return true, nil
}
