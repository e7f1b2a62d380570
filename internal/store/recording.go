package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// PartialRecording says where a live call's recording stands in storage
// while it is being made, so that if the worker dies mid-call the attempt
// (settled as interrupted) still leads to its audio. The fields mirror
// recording.PartialInfo; store cannot import that package.
type PartialRecording struct {
	Bucket     string `bson:"bucket"`
	Prefix     string `bson:"prefix"`
	Segments   int    `bson:"segments"`
	DurationMS int64  `bson:"duration_ms"`
	Bytes      int64  `bson:"bytes"`
	// FinalKey is where the joined recording goes: if it exists, the
	// segments were joined and may be gone.
	FinalKey string `bson:"final_key"`
}

// RecordPartialRecording notes the stored segments of a live call.
func (s *Store) RecordPartialRecording(ctx context.Context, c Claim, p PartialRecording) error {
	return s.fencedUpdate(ctx, c, "record partial recording", activeCallStatuses,
		bson.D{{Key: "$set", Value: bson.D{{Key: "recording_partial", Value: p}}}})
}

// ClearPartialRecording removes the note once the final recording exists,
// so a finished call points at one object only.
func (s *Store) ClearPartialRecording(ctx context.Context, c Claim) error {
	return s.fencedUpdate(ctx, c, "clear partial recording", activeCallStatuses,
		bson.D{{Key: "$unset", Value: bson.D{{Key: "recording_partial", Value: ""}}}})
}

// GetPartialRecording reads the note; nil when there is none.
func (s *Store) GetPartialRecording(ctx context.Context, attemptID string) (*PartialRecording, error) {
	var doc struct {
		Partial *PartialRecording `bson:"recording_partial"`
	}
	if err := s.calls.FindOne(ctx, bson.D{{Key: "_id", Value: attemptID}}).Decode(&doc); err != nil {
		return nil, err
	}
	return doc.Partial, nil
}

// GetCallDocument returns the attempt's whole document as stored, for
// operators (`worker call show`): every field, including those written by
// parts of the system that have no Go type for them here.
func (s *Store) GetCallDocument(ctx context.Context, attemptID string) (bson.M, error) {
	var doc bson.M
	err := s.calls.FindOne(ctx, bson.D{{Key: "_id", Value: attemptID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("store: call %q: %w", attemptID, ErrNotFound)
	}
	return doc, err
}
