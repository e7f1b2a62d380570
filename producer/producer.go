// Package producer enqueues the DocShield voice worker's tasks the way the
// worker expects them, for a Go campaign backend and for the worker's own
// CLI: each payload validated before it leaves (field errors named), on its
// type's queue, with its type's retries (package tasks), and an inline call
// written to MongoDB first, so only its attempt id rests in Redis, where
// asynq's CLI and dashboards can read every payload.
//
//	p := producer.New(asynqClient, mongoClient.Database("docshield"))
//	info, err := p.Enqueue(ctx, tasks.CampaignDispatch{CampaignID: id})
//
// See the examples.
package producer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Producer enqueues tasks. It is safe for concurrent use.
type Producer struct {
	q     *asynq.Client
	calls store.Calls // nil: no MongoDB, inline calls are refused
	now   func() time.Time
}

// New makes a Producer over an asynq client and the worker's MongoDB
// database (the one its MONGODB_URI names). db may be nil for a producer
// that never places inline calls. The caller keeps owning both clients.
func New(q *asynq.Client, db *mongo.Database) *Producer {
	p := &Producer{q: q, now: time.Now}
	if db != nil {
		p.calls = store.ForDatabase(db)
	}
	return p
}

// ErrInlineNeedsMongoDB: an inline call was given to a Producer made
// without a database. Its details would otherwise rest in Redis.
var ErrInlineNeedsMongoDB = errors.New("producer: an inline call needs the worker's MongoDB database (producer.New's db), so that only its id goes to Redis")

// Enqueue validates p and enqueues it (tasks.Enqueue). An inline call is
// written to MongoDB first (WriteInline) and enqueued as its attempt id
// only, with the attempt id as task id unless opts set one: enqueueing the
// same call twice finds the attempt there and is refused by Redis
// (asynq.ErrTaskIDConflict); the worker dials it once either way.
func (p *Producer) Enqueue(ctx context.Context, t tasks.Payload, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	co, inline := asPointer(t)
	if inline && co.Inline != nil {
		if p.calls == nil {
			return nil, ErrInlineNeedsMongoDB
		}
		if err := co.Validate(); err != nil {
			return nil, err
		}
		if err := WriteInline(ctx, p.calls, co.Inline, p.now()); err != nil {
			return nil, err
		}
		opts = append([]asynq.Option{asynq.TaskID(co.Inline.AttemptID)}, opts...)
		t = tasks.CallOutbound{AttemptID: co.Inline.AttemptID}
	}
	return tasks.Enqueue(ctx, p.q, t, opts...)
}

func asPointer(t tasks.Payload) (*tasks.CallOutbound, bool) {
	switch v := t.(type) {
	case tasks.CallOutbound:
		return &v, true
	case *tasks.CallOutbound:
		return v, true
	}
	return nil, false
}

// InlineConflictError is an inline call whose attempt id already names an
// attempt with other details (another phone number, other instructions):
// not a duplicate but two different calls under one id. The first one
// stands; this one is refused. Fields names what differs, never the values
// (they are personal data).
type InlineConflictError struct {
	AttemptID string
	Fields    []string
	// Status is the existing attempt's.
	Status store.CallStatus
}

func (e *InlineConflictError) Error() string {
	return fmt.Sprintf("inline call conflicts with attempt %s, which already exists with another %v: not placed", e.AttemptID, e.Fields)
}

// InlineAttempt is the attempt document an inline call is written as.
func InlineAttempt(in *tasks.InlineCall, now time.Time) *store.Call {
	return &store.Call{
		ID:           in.AttemptID,
		Attempt:      1,
		Status:       store.CallQueued,
		CreatedAt:    now,
		Phone:        in.Phone,
		Instructions: in.Instructions,
		Greeting:     in.Greeting,
		Variables:    in.Variables,
		CallerID:     in.CallerID,
		TimeZone:     in.TimeZone,
	}
}

// WriteInline writes the attempt of an inline call, the one way it is
// written (the worker does it too, for a raw inline payload). One already
// there with the same details is a repeat and is fine; one with other
// details is an *InlineConflictError.
func WriteInline(ctx context.Context, calls store.Calls, in *tasks.InlineCall, now time.Time) error {
	want := InlineAttempt(in, now)
	err := calls.CreateAttempt(ctx, want)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrDuplicate) {
		return fmt.Errorf("create inline attempt %s: %w", in.AttemptID, err)
	}
	have, err := calls.GetCall(ctx, in.AttemptID)
	if err != nil {
		return fmt.Errorf("read existing attempt %s: %w", in.AttemptID, err)
	}
	if fields := inlineDiff(have, want); len(fields) > 0 {
		return &InlineConflictError{AttemptID: in.AttemptID, Fields: fields, Status: have.Status}
	}
	return nil
}

// inlineDiff names the inline fields (as the payload spells them) in which
// have differs from want; a campaign's attempt differs in campaign_id.
func inlineDiff(have, want *store.Call) []string {
	var out []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"campaign_id", have.CampaignID.IsZero()},
		{"phone", have.Phone == want.Phone},
		{"instructions", have.Instructions == want.Instructions},
		{"greeting", have.Greeting == want.Greeting},
		{"variables", maps.Equal(have.Variables, want.Variables)},
		{"caller_id", have.CallerID == want.CallerID},
		{"time_zone", have.TimeZone == want.TimeZone},
	} {
		if !f.same {
			out = append(out, f.name)
		}
	}
	return out
}
