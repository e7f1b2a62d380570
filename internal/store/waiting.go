package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// SetAttemptWaiting records on a queued attempt that it waits for its
// calling hours: until when, and why. It reports false, writing nothing,
// when the attempt is no longer queued (claimed or ended meanwhile).
//
// Nothing else writes a queued attempt while its task runs except the
// claim, which happens only inside calling hours; the two are decided by
// the same clock on one worker. Across workers whose clocks differ at the
// very edge of the hours, FerretDB's read-modify-write (see the package
// doc) could let this write land over a claim; the claim's ledger entry
// still stands, so the attempt is then never dialed twice, only settled as
// interrupted once its lease lapses.
func (s *Store) SetAttemptWaiting(ctx context.Context, attemptID string, until time.Time, reason string) (bool, error) {
	if attemptID == "" || until.IsZero() || reason == "" {
		return false, errors.New("store: set attempt waiting: attemptID, until and reason are required")
	}
	ok, err := s.setWhileQueued(ctx, attemptID, bson.D{
		{Key: "waiting_until", Value: until.UTC().Truncate(time.Millisecond)},
		{Key: "waiting_reason", Value: reason},
	})
	if err != nil {
		return false, fmt.Errorf("store: set attempt %q waiting: %w", attemptID, err)
	}
	return ok, nil
}

// setWhileQueued sets fields on an attempt that is still queued, under the
// attempt's write lock, and reports whether it was.
func (s *Store) setWhileQueued(ctx context.Context, attemptID string, set bson.D) (bool, error) {
	unlock, err := s.lockAttempt(ctx, attemptID)
	if err != nil {
		return false, err
	}
	defer unlock()
	res, err := s.calls.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: attemptID}, {Key: "status", Value: CallQueued}},
		bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return false, err
	}
	return res.MatchedCount > 0, nil
}
