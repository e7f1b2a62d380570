package call

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
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

// HandlerStore is what the handler reads and writes in MongoDB.
// *store.Store implements it.
type HandlerStore interface {
	store.Calls
	SetAttemptWaiting(ctx context.Context, attemptID string, until time.Time, reason string) (bool, error)
	CancelQueuedAttempt(ctx context.Context, attemptID, reason string, now time.Time) (bool, error)
}

var _ HandlerStore = (*store.Store)(nil)

// InlineDialMargin is how long calling hours must still last when an
// inline call is claimed: setting up the room, the agent and the model
// takes seconds, and a call claimed at 20:59:59 would otherwise be refused
// by the check right before dialing and, being claimed, never placed.
const InlineDialMargin = 2 * time.Minute

// Handler handles call:outbound.
type Handler struct {
	Calls  HandlerStore
	Runner AttemptRunner // nil: ErrNoRunner
	// Queue schedules an inline call that is outside its calling hours
	// for their next opening (without it such a call fails and is
	// retried), and the analysis of an attempt the claim cancelled.
	Queue Enqueuer
	Owner string
	Lease time.Duration
	// Now is the clock calling hours are judged by (default time.Now);
	// tests move it. The check right before dialing reads the wall clock.
	Now func() time.Time
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
	// An inline call waits for its calling hours before it is claimed: a
	// claim is for good, and waiting must spend no retry.
	if waiting, err := h.waitForHours(ctx, attemptID); waiting || err != nil {
		return err
	}
	lease := h.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	claim, err := h.Calls.ClaimAttempt(ctx, attemptID, h.Owner, lease)
	switch {
	case errors.Is(err, store.ErrClaimSettled):
		// An earlier claim lapsed unstarted and we cancelled the attempt:
		// never dialed, so its contact is due again once the outcome is
		// applied.
		log.Warn("call.claim_lost", zap.String("reason", err.Error()))
		enqueueAnalysis(ctx, h.Queue, attemptID, log)
		return nil
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

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// waitForHours holds a queued inline attempt that is outside its calling
// hours (campaign.LegalWindow: 08:00–21:00 in its time_zone, or in every
// zone its number may ring in). It records on the call document until
// when and why, schedules a call:outbound task carrying only the attempt
// id for the next opening, and reports true: the task is done, unclaimed,
// without using a retry. An attempt whose local time cannot be known, or
// whose zones never share an hour inside the limits, is cancelled undialed
// and its task archived with the reason. Campaign attempts are left to the
// campaign's own check (CheckDial), which sees the contact's zone too.
func (h *Handler) waitForHours(ctx context.Context, attemptID string) (bool, error) {
	c, err := h.Calls.GetCall(ctx, attemptID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // the claim reports it
	}
	if err != nil {
		return true, fmt.Errorf("read attempt %s: %w", attemptID, err)
	}
	if !c.CampaignID.IsZero() || c.Status != store.CallQueued {
		return false, nil
	}
	now := h.now()
	w, err := campaign.LegalWindow(c.Phone, c.TimeZone)
	if err != nil {
		return true, h.neverCallable(ctx, c, err.Error(), now)
	}
	if w.Open(now) && w.Open(now.Add(InlineDialMargin)) {
		return false, nil
	}
	until, ok := w.NextOpenFor(now, InlineDialMargin)
	if !ok {
		return true, h.neverCallable(ctx, c,
			"no hour in the next two weeks is inside 08:00–21:00 in every zone the number may ring in; name the callee's time_zone", now)
	}
	why := w.Closed(now)
	if why == "" {
		why = "the hours close within " + InlineDialMargin.String() + ": " + w.Closed(now.Add(InlineDialMargin))
	}
	reason := "outside calling hours (08:00–21:00 where the callee is): " + why
	if waiting, err := h.Calls.SetAttemptWaiting(ctx, c.ID, until, reason); err != nil || !waiting {
		return err != nil, err // not queued any more: the claim sorts it out
	}
	if err := h.schedule(ctx, c.ID, until, now); err != nil {
		return true, err
	}
	logging.FromContext(ctx).Info("call.waiting", zap.Time("waiting_until", until), zap.String("reason", reason))
	return true, nil
}

// schedule enqueues the attempt's task for until. The task id is derived
// from the attempt and the time, so duplicate deliveries schedule it once;
// a scheduled task that ran early (clocks differ) and must wait again for
// the same opening takes the next second rather than its own id.
func (h *Handler) schedule(ctx context.Context, attemptID string, until, now time.Time) error {
	if h.Queue == nil {
		return fmt.Errorf("attempt %s is outside calling hours and this worker has no queue to schedule it on", attemptID)
	}
	id := waitTaskID(attemptID, until)
	if self, _ := asynq.GetTaskID(ctx); self == id {
		until = until.Add(time.Second)
		id = waitTaskID(attemptID, until)
	}
	_, err := h.Queue.Enqueue(ctx, tasks.CallOutbound{AttemptID: attemptID},
		asynq.TaskID(id), asynq.ProcessIn(until.Sub(now)))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("schedule attempt %s for its calling hours: %w", attemptID, err)
	}
	return nil
}

// waitTaskID is the id of the task that places an attempt at until.
func waitTaskID(attemptID string, until time.Time) string {
	return attemptID + "@" + strconv.FormatInt(until.Unix(), 10)
}

// neverCallable cancels an inline attempt that can never be placed inside
// calling hours, and archives its task with the reason.
func (h *Handler) neverCallable(ctx context.Context, c *store.Call, why string, now time.Time) error {
	reason := "not dialed: " + why
	if _, err := h.Calls.CancelQueuedAttempt(ctx, c.ID, reason, now); err != nil {
		return fmt.Errorf("cancel attempt %s: %w", c.ID, err)
	}
	return worker.Reject(fmt.Errorf("attempt %s: %w: %s", c.ID, campaign.ErrMustNotDial, why))
}

// createInline writes the attempt of a one-off call. The id comes from the
// payload, so a duplicate delivery finds the attempt already there; one
// with other details is a conflict (see createInline).
func (h *Handler) createInline(ctx context.Context, in *tasks.InlineCall) error {
	return createInline(ctx, h.Calls, in, h.now())
}
