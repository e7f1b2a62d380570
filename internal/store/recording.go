package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// CollRecordingJoins is the ledger whose unique _id elects the one worker
// that joins an orphaned recording in a lease period (see OrphanRecordings).
const CollRecordingJoins = "recording_joins"

// ErrCallNotEnded is returned by writes meant for an ended call's
// recording while the call is still live.
var ErrCallNotEnded = errors.New("store: call has not ended")

// PartialRecording says where a call's recording stands in storage while
// it is only segments, so that if the worker dies mid-call (or stops while
// storage is away) the attempt still leads to its audio, and a later
// worker joins it. The fields mirror recording.PartialInfo.
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

// RecordingStatus is where a call's recording stands (recording_status).
type RecordingStatus string

const (
	// RecordingComplete: `recording` holds the whole call.
	RecordingComplete RecordingStatus = "complete"
	// RecordingPartial: recording_lost_ms of it is gone for good (omitted
	// when the amount is unknown: a worker killed mid-call). What was kept
	// is in `recording`, or in segments (recording_partial) a worker joins.
	RecordingPartial RecordingStatus = "partial"
	// RecordingPendingUpload: storage has not taken all of it yet; the
	// worker in recording_pending holds the rest and keeps trying.
	RecordingPendingUpload RecordingStatus = "pending_upload"
)

// RecordingPending names the worker holding a recording that storage has
// not taken yet (recording_pending). A lapsed lease means that worker is
// gone, and any worker joins what reached storage.
type RecordingPending struct {
	Owner      string    `bson:"owner"`
	LeaseUntil time.Time `bson:"lease_until"`
	// Since is when the call ended with its recording pending.
	Since time.Time `bson:"since"`
	// DurationMS is the whole recording's length: what a join cannot
	// find of it is lost.
	DurationMS int64 `bson:"duration_ms"`
}

// RecordingState is the recording fields of a call, written together.
type RecordingState struct {
	// Status "" removes recording_status (there is no recording).
	Status RecordingStatus
	// Recording is the final object; nil leaves `recording` as it is.
	Recording *Recording
	// Partial, Pending, LostMS and Error replace their fields; zero values
	// remove them.
	Partial *PartialRecording
	Pending *RecordingPending
	LostMS  int64
	Error   string
}

// update is the $set/$unset of s; only recording fields.
func (s RecordingState) update() bson.D {
	var set, unset bson.D
	field := func(name string, v any, present bool) {
		if present {
			set = append(set, bson.E{Key: name, Value: v})
		} else {
			unset = append(unset, bson.E{Key: name, Value: ""})
		}
	}
	field("recording_status", s.Status, s.Status != "")
	field("recording_partial", s.Partial, s.Partial != nil)
	field("recording_pending", s.Pending, s.Pending != nil)
	field("recording_lost_ms", s.LostMS, s.LostMS > 0)
	field("recording_error", s.Error, s.Error != "")
	if s.Recording != nil {
		set = append(set, bson.E{Key: "recording", Value: s.Recording})
	}
	u := bson.D{}
	if len(set) > 0 {
		u = append(u, bson.E{Key: "$set", Value: set})
	}
	if len(unset) > 0 {
		u = append(u, bson.E{Key: "$unset", Value: unset})
	}
	return u
}

// RecordPartialRecording notes the stored segments of a live call.
func (s *Store) RecordPartialRecording(ctx context.Context, c Claim, p PartialRecording) error {
	return s.fencedUpdate(ctx, c, "record partial recording", activeCallStatuses,
		bson.D{{Key: "$set", Value: bson.D{{Key: "recording_partial", Value: p}}}})
}

// RecordRecordingState writes the recording's state at hang-up, under
// the claim, before the terminal write.
func (s *Store) RecordRecordingState(ctx context.Context, c Claim, st RecordingState) error {
	return s.fencedUpdate(ctx, c, "record recording state", activeCallStatuses, st.update())
}

// SettleRecording writes the recording fields of an ended call: how a
// recording left pending at hang-up, or orphaned by a dead worker, ended.
// The filter requires a terminal status and only recording fields are
// written, so it can never undo the call's end. A live call gives
// ErrCallNotEnded.
func (s *Store) SettleRecording(ctx context.Context, attemptID string, st RecordingState) error {
	return s.endedUpdate(ctx, attemptID, "settle recording", nil, st.update())
}

// NotePendingRecording writes (or renews) the note of an ended call whose
// recording owner still holds audio. It never replaces a settled outcome:
// a renewal that comes after the settle matches nothing.
func (s *Store) NotePendingRecording(ctx context.Context, attemptID string, st RecordingState) error {
	err := s.endedUpdate(ctx, attemptID, "note pending recording",
		bson.D{{Key: "recording_status", Value: bson.D{{Key: "$nin", Value: []RecordingStatus{RecordingComplete, RecordingPartial}}}}},
		st.update())
	if errors.Is(err, errNoMatch) {
		return nil // settled meanwhile
	}
	return err
}

var errNoMatch = errors.New("store: matched nothing")

// endedUpdate applies update to an ended attempt that also matches extra.
func (s *Store) endedUpdate(ctx context.Context, attemptID, op string, extra, update bson.D) error {
	unlock, err := s.lockAttempt(ctx, attemptID)
	if err != nil {
		return err
	}
	defer unlock()
	filter := append(bson.D{
		{Key: "_id", Value: attemptID},
		{Key: "status", Value: bson.D{{Key: "$in", Value: TerminalCallStatuses}}},
	}, extra...)
	res, err := s.calls.UpdateOne(ctx, filter, update)
	if err != nil {
		return fmt.Errorf("store: %s of attempt %q: %w", op, attemptID, err)
	}
	if res.MatchedCount > 0 {
		return nil
	}
	status, err := s.callStatus(ctx, attemptID)
	switch {
	case err != nil:
		return fmt.Errorf("store: %s of attempt %q: %w", op, attemptID, err)
	case !status.Terminal():
		return fmt.Errorf("store: %s of attempt %q: %w: attempt is %s", op, attemptID, ErrCallNotEnded, status)
	}
	return fmt.Errorf("store: %s of attempt %q: %w", op, attemptID, errNoMatch)
}

// OrphanRecording is an ended call whose recording no live worker holds.
type OrphanRecording struct {
	AttemptID string
	Status    RecordingStatus
	Partial   *PartialRecording
	Pending   *RecordingPending
	LostMS    int64
	Error     string
}

// OrphanRecordings finds up to limit ended calls whose recording needs a
// worker to join it: pending upload with a lapsed lease (its owner died),
// or segments still noted more than grace after the call ended (killed
// mid-call and reaped, or reported partial at shutdown). Grace lets a
// live owner's first pending note land before anyone else acts.
func (s *Store) OrphanRecordings(ctx context.Context, now time.Time, grace time.Duration, limit int) ([]OrphanRecording, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("store: orphan recordings: limit %d is not positive", limit)
	}
	now = now.UTC().Truncate(time.Millisecond)
	var docs []struct {
		ID      string            `bson:"_id"`
		Status  RecordingStatus   `bson:"recording_status"`
		Partial *PartialRecording `bson:"recording_partial"`
		Pending *RecordingPending `bson:"recording_pending"`
		LostMS  int64             `bson:"recording_lost_ms"`
		Error   string            `bson:"recording_error"`
	}
	terminal := bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: TerminalCallStatuses}}}
	err := s.findAll(ctx, s.calls, bson.D{{Key: "$or", Value: bson.A{
		bson.D{
			{Key: "recording_status", Value: RecordingPendingUpload},
			{Key: "recording_pending.lease_until", Value: bson.D{{Key: "$lt", Value: now}}},
			terminal,
		},
		bson.D{
			// $gt "" rather than $exists, so an index on the field serves it.
			{Key: "recording_partial.final_key", Value: bson.D{{Key: "$gt", Value: ""}}},
			{Key: "recording_status", Value: bson.D{{Key: "$ne", Value: RecordingPendingUpload}}},
			{Key: "ended_at", Value: bson.D{{Key: "$lt", Value: now.Add(-grace)}}},
			terminal,
		},
	}}}, options.Find().SetProjection(bson.D{
		{Key: "recording_status", Value: 1}, {Key: "recording_partial", Value: 1}, {Key: "recording_pending", Value: 1},
		{Key: "recording_lost_ms", Value: 1}, {Key: "recording_error", Value: 1},
	}).SetLimit(int64(limit)), &docs)
	if err != nil {
		return nil, fmt.Errorf("store: orphan recordings: %w", err)
	}
	out := make([]OrphanRecording, len(docs))
	for i, d := range docs {
		out[i] = OrphanRecording{AttemptID: d.ID, Status: d.Status, Partial: d.Partial, Pending: d.Pending, LostMS: d.LostMS, Error: d.Error}
	}
	return out, nil
}

// ElectRecordingJoin returns true for exactly one caller per attempt and
// epoch, across processes: an insert whose unique _id decides, as the
// claim ledger does (FerretDB does not make conditional updates atomic;
// see the package doc). A winner that dies leaves the next epoch to
// someone else.
func (s *Store) ElectRecordingJoin(ctx context.Context, attemptID string, epoch int64, owner string) (bool, error) {
	_, err := s.db.Collection(CollRecordingJoins).InsertOne(ctx, bson.D{
		{Key: "_id", Value: attemptID + "/" + strconv.FormatInt(epoch, 10)},
		{Key: "owner", Value: owner},
		{Key: "at", Value: s.clock()},
	})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: elect recording join of attempt %q: %w", attemptID, err)
	}
	return true, nil
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
