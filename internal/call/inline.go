package call

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/docshield/voice-worker/internal/worker"
	"go.uber.org/zap"
)

// InlineConflictError is an inline call whose attempt id already names an
// attempt with other details (another phone number, other instructions):
// not a duplicate delivery but two different calls under one id. The first
// one stands; this one is refused. Fields names what differs, never the
// values (they are personal data).
type InlineConflictError struct {
	AttemptID string
	Fields    []string
}

func (e *InlineConflictError) Error() string {
	return fmt.Sprintf("inline call conflicts with attempt %s, which already exists with another %v: not placed", e.AttemptID, e.Fields)
}

// InlineAttempt is the attempt document an inline call is written as, by
// the worker (a raw inline payload) and by `worker enqueue` alike.
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

// CreateInline writes the attempt of an inline call. One already there
// with the same details is a duplicate delivery (or enqueue) and is fine;
// one with other details is a conflict, logged as `call.conflict` and
// returned as an *InlineConflictError marked permanent (the task is
// archived with the reason, never retried into the same conflict).
func CreateInline(ctx context.Context, calls store.Calls, in *tasks.InlineCall, now time.Time) error {
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
	fields := inlineDiff(have, want)
	if len(fields) == 0 {
		return nil
	}
	logging.FromContext(ctx).Warn("call.conflict", zap.String("attempt_id", in.AttemptID), zap.Strings("fields", fields),
		zap.String("status", string(have.Status)))
	return worker.Reject(&InlineConflictError{AttemptID: in.AttemptID, Fields: fields})
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
