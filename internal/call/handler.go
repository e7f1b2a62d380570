package call

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// AttemptRunner conducts a claimed attempt: dial, converse, record,
// persist. Every write it makes to the attempt presents the claim's fence.
// *Runner is the real one.
type AttemptRunner interface {
	Run(ctx context.Context, claim store.Claim, c *store.Call) error
}

// ErrNoRunner means this worker cannot place calls (telephony is not
// configured). The task is retried later, unclaimed, so nothing is dialed
// and nothing is lost.
var ErrNoRunner = errors.New("call: this worker cannot place calls: telephony is not configured")

// DefaultLease is how long a claim stays valid before a reaper may settle
// the attempt as interrupted; a live call extends it.
const DefaultLease = 2 * time.Minute

// Handler handles call:outbound.
type Handler struct {
	Calls  store.Calls
	Runner AttemptRunner // nil: ErrNoRunner
	Owner  string
	Lease  time.Duration
	Now    func() time.Time
}

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	log := logging.FromContext(ctx)
	var p tasks.CallOutbound
	if err := tasks.Unmarshal(t.Payload(), &p); err != nil {
		return worker.Reject(err)
	}
	if h.Runner == nil {
		return ErrNoRunner
	}
	attemptID := p.AttemptID
	if p.Inline != nil {
		attemptID = p.Inline.AttemptID
		if err := h.createInline(ctx, p.Inline); err != nil {
			return err
		}
	}
	lease := h.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	claim, err := h.Calls.ClaimAttempt(ctx, attemptID, h.Owner, lease)
	switch {
	case errors.Is(err, store.ErrClaimLost):
		// A duplicate delivery, another worker, or an attempt already
		// settled: the one rule is not to dial again.
		log.Info("call.claim_lost", zap.String("reason", err.Error()))
		return nil
	case errors.Is(err, store.ErrNotFound):
		return worker.Reject(fmt.Errorf("attempt %s does not exist: %w", attemptID, err))
	case err != nil:
		return fmt.Errorf("claim attempt %s: %w", attemptID, err)
	}
	log.Info("call.claimed", zap.String("owner", h.Owner))
	c, err := h.Calls.GetCall(ctx, attemptID)
	if err != nil {
		return fmt.Errorf("read claimed attempt %s: %w", attemptID, err)
	}
	return h.Runner.Run(ctx, claim, c)
}

// createInline writes the attempt of a one-off call. The id comes from the
// payload, so a duplicate delivery finds the attempt already there; one
// with other details is a conflict (see CreateInline).
func (h *Handler) createInline(ctx context.Context, in *tasks.InlineCall) error {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	return CreateInline(ctx, h.Calls, in, now())
}
