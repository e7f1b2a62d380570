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

// A call's end is written twice: first into its claim in the call_claims
// ledger (RecordEnd), then onto the call document (the terminal update).
//
// Why twice: on FerretDB an update is "read, change, write the whole
// document back" (see the package doc), and a write the driver gave up on
// (a timeout under load) may still land on the server afterwards. A lease
// renewal landing after the terminal write puts the call back in
// progress; the reaper would then settle it as interrupted and the real
// end would be lost. The claim document has no such late writers (nothing
// writes it between the claim and the end), so the end recorded there
// survives, and whoever finds the call document not terminal while its
// claim holds an end (ApplyRecordedEnds, the reaper) writes that end
// again instead of inventing one. The recorded end is the truth; the
// call document converges to it. On Atlas the conditional updates are
// atomic and the second copy is merely redundant.

// EndRecord is how a call ended, as its owner decided it.
type EndRecord struct {
	Status  CallStatus  `bson:"status" json:"status"`
	At      time.Time   `bson:"at" json:"at"`
	Fields  CallFields  `bson:"fields" json:"fields"`
	Details CallDetails `bson:"details" json:"details"`
}

// claimEnd is the claim document's end, with its owner's fence.
type claimEnd struct {
	ID    string     `bson:"_id"`
	Fence string     `bson:"fence"`
	End   *EndRecord `bson:"end"`
}

// RecordEnd keeps the call's end in its claim, where no late write can
// undo it. Writing the same end again is harmless. A claim that is not
// c's (the attempt was reaped and settled by someone else) returns
// ErrFenceMismatch.
func (s *Store) RecordEnd(ctx context.Context, c Claim, e EndRecord) error {
	op := "record end as " + string(e.Status)
	if c.AttemptID == "" || c.Fence == "" {
		return fmt.Errorf("store: %s: Claim.AttemptID or Claim.Fence is empty", op)
	}
	if !e.Status.Terminal() {
		return fmt.Errorf("store: %s attempt %q: %w: not a terminal status", op, c.AttemptID, ErrInvalidTransition)
	}
	if e.At.IsZero() {
		return fmt.Errorf("store: %s attempt %q: EndRecord.At is zero", op, c.AttemptID)
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	res, err := s.claims.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: c.AttemptID}, {Key: "fence", Value: c.Fence}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "end", Value: e}, {Key: "ended_at", Value: e.At}}}})
	if err != nil {
		return fmt.Errorf("store: %s attempt %q: %w", op, c.AttemptID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("store: %s attempt %q: %w: the claim is not ours", op, c.AttemptID, ErrFenceMismatch)
	}
	return nil
}

// EndCall records the call's end in its claim (RecordEnd), then moves the
// call document to its terminal status together with everything the call
// flow kept until the end, in one write: the status and its reason can
// never be seen apart. Like Transition it refuses a stale fence or an
// attempt that already ended. Once RecordEnd succeeded the end is safe
// even if the second write fails: ApplyRecordedEnds and the reaper write
// it later, so the caller may retry or leave it to them.
func (s *Store) EndCall(ctx context.Context, c Claim, e EndRecord) error {
	if err := s.RecordEnd(ctx, c, e); err != nil {
		return err
	}
	return s.applyEnd(ctx, c, e)
}

func (s *Store) applyEnd(ctx context.Context, c Claim, e EndRecord) error {
	op := "end call as " + string(e.Status)
	from, stamp, _ := transitionRule(e.Status)
	fields, err := toDoc(e.Fields)
	if err != nil {
		return fmt.Errorf("store: %s attempt %q: encode CallFields: %w", op, c.AttemptID, err)
	}
	details, err := toDoc(e.Details)
	if err != nil {
		return fmt.Errorf("store: %s attempt %q: encode CallDetails: %w", op, c.AttemptID, err)
	}
	set := append(bson.D{{Key: "status", Value: e.Status}, {Key: stamp, Value: e.At.UTC().Truncate(time.Millisecond)}}, fields...)
	set = append(set, details...)
	return s.fencedUpdate(ctx, c, op, from, bson.D{{Key: "$set", Value: set}})
}

// RecordedEnd returns the end recorded in the attempt's claim, and the
// claim's fence; nil when the call has not ended (or was never claimed).
func (s *Store) RecordedEnd(ctx context.Context, attemptID string) (*EndRecord, string, error) {
	var ce claimEnd
	err := s.claims.FindOne(ctx, bson.D{{Key: "_id", Value: attemptID}},
		options.FindOne().SetProjection(bson.D{{Key: "fence", Value: 1}, {Key: "end", Value: 1}})).Decode(&ce)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("store: read the recorded end of attempt %q: %w", attemptID, err)
	}
	return ce.End, ce.Fence, nil
}

// ApplyRecordedEnds writes the recorded end of calls that ended since
// since but whose call document is not terminal (a late write undid the
// terminal one, or it never landed), up to limit of them, and returns
// their ids. Each write is fenced, so it never overrides another owner.
func (s *Store) ApplyRecordedEnds(ctx context.Context, since time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("store: apply recorded ends: limit %d is not positive", limit)
	}
	var ended []claimEnd
	if err := s.findAll(ctx, s.claims, bson.D{{Key: "ended_at", Value: bson.D{{Key: "$gte", Value: since.UTC()}}}},
		options.Find().SetProjection(bson.D{{Key: "fence", Value: 1}, {Key: "end", Value: 1}}), &ended); err != nil {
		return nil, fmt.Errorf("store: apply recorded ends: find ended claims: %w", err)
	}
	if len(ended) == 0 {
		return nil, nil
	}
	byID := make(map[string]claimEnd, len(ended))
	ids := make([]string, 0, len(ended))
	for _, e := range ended {
		if e.End != nil {
			byID[e.ID] = e
			ids = append(ids, e.ID)
		}
	}
	var open []struct {
		ID    string `bson:"_id"`
		Fence string `bson:"fence"`
	}
	if err := findByStatus(ctx, s, s.calls, activeCallStatuses, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}},
	}, options.Find().SetProjection(bson.D{{Key: "fence", Value: 1}}).SetLimit(int64(limit)), &open); err != nil {
		return nil, fmt.Errorf("store: apply recorded ends: find calls not ended: %w", err)
	}
	open = open[:min(len(open), limit)]
	var applied []string
	for _, o := range open {
		ce := byID[o.ID]
		if o.Fence != ce.Fence {
			continue // another claim's call; not ours to end
		}
		err := s.applyEnd(ctx, Claim{AttemptID: o.ID, Fence: ce.Fence}, *ce.End)
		switch {
		case err == nil:
			applied = append(applied, o.ID)
		case errors.Is(err, ErrFenceMismatch) || errors.Is(err, ErrInvalidTransition):
			// Ended meanwhile.
		default:
			return applied, err
		}
	}
	return applied, nil
}
