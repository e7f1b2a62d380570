package campaign

import (
	"context"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
)

// Change is a status change an operator asked for.
type Change struct {
	From store.CampaignStatus `json:"from"`
	To   store.CampaignStatus `json:"to"`
	// CancelledAttempts counts queued attempts a cancel stopped before
	// they were dialed.
	CancelledAttempts int `json:"cancelled_attempts,omitempty"`
}

// Pause stops a scheduled or running campaign from dispatching. Calls
// already in progress finish normally; attempts still queued are refused by
// CheckDial and return to their contacts unspent.
func (s *Service) Pause(ctx context.Context, id bson.ObjectID) (Change, error) {
	return s.setStatus(ctx, id, store.CampaignPaused, store.CampaignScheduled, store.CampaignRunning)
}

// Resume makes a paused campaign scheduled again; the next dispatch round
// starts it (at once if its window is open).
func (s *Service) Resume(ctx context.Context, id bson.ObjectID) (Change, error) {
	return s.setStatus(ctx, id, store.CampaignScheduled, store.CampaignPaused)
}

// Cancel ends a campaign for good and cancels its queued attempts so that
// none is dialed; calls already in progress finish normally. Cancelling a
// cancelled campaign sweeps its queued attempts again.
func (s *Service) Cancel(ctx context.Context, id bson.ObjectID) (Change, error) {
	ch, err := s.setStatus(ctx, id, store.CampaignCancelled,
		store.CampaignDraft, store.CampaignScheduled, store.CampaignRunning, store.CampaignPaused, store.CampaignCancelled)
	if err != nil {
		return ch, err
	}
	now := s.now()
	// Live attempts never exceed the concurrency limit, so one read holds
	// them all.
	queued, err := s.store.QueuedAttempts(ctx, id, now.Add(time.Millisecond), MaxConcurrencyLimit)
	if err != nil {
		return ch, err
	}
	for _, q := range queued {
		ok, err := s.store.CancelQueuedAttempt(ctx, q.ID, "campaign cancelled", now)
		if err != nil {
			return ch, err
		}
		if ok {
			ch.CancelledAttempts++
		}
	}
	return ch, nil
}

func (s *Service) setStatus(ctx context.Context, id bson.ObjectID, to store.CampaignStatus, from ...store.CampaignStatus) (Change, error) {
	prev, err := s.store.SetCampaignStatus(ctx, id, from, to, s.now())
	if err != nil {
		return Change{From: prev}, err
	}
	s.log.Info("campaign.status", zap.String("campaign_id", id.Hex()), zap.String("from", string(prev)), zap.String("to", string(to)))
	return Change{From: prev, To: to}, nil
}
