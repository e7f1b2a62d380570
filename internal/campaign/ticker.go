package campaign

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/docshield/voice-worker/internal/periodic"
	"github.com/docshield/voice-worker/internal/store"
	"go.uber.org/zap"
)

// Ticker runs the periodic dispatch: at the start of every round (Interval,
// aligned to the clock so that all workers agree on where rounds begin) it
// runs a round for each scheduled and running campaign. Every worker runs
// one; the round ledger lets one worker per campaign do each round, so
// more dynos spread the campaigns rather than repeat the work.
//
// Why a goroutine and not an asynq periodic task: a round must run whether
// or not the queues are backed up, and a goroutine per dyno needs no
// scheduler election in Redis. The campaign:dispatch task still exists, for
// a backend that wants a round now, and runs the same Round.
type Ticker struct {
	loop *periodic.Loop // immutable after NewTicker
}

// NewTicker makes a Ticker for s; Start starts it.
func (s *Service) NewTicker() *Ticker {
	interval := s.opt.Interval
	return &Ticker{loop: periodic.New(periodic.Options{Run: s.Tick,
		Next: func(now time.Time) time.Duration { return untilNextRound(now, interval) }})}
}

// Start starts the ticker's goroutine: a round at the start of each round.
func (t *Ticker) Start() { t.loop.Start() }

// Shutdown stops the ticker, cancelling a round in progress, and waits for
// its goroutine to exit. It may be called more than once.
func (t *Ticker) Shutdown() { t.loop.Shutdown() }

// untilNextRound is the wait until just after the next round begins. The
// jitter (up to a tenth of a round) keeps dynos from hitting MongoDB in the
// same millisecond, and leaves nine tenths of the round for the work.
func untilNextRound(now time.Time, interval time.Duration) time.Duration {
	next := roundStart(roundOf(now, interval)+1, interval)
	return next.Sub(now) + rand.N(interval/10+1)
}

// roundOf numbers rounds from the Unix epoch, so every worker numbers them
// alike.
func roundOf(t time.Time, interval time.Duration) int64 { return t.UnixNano() / int64(interval) }

func roundStart(n int64, interval time.Duration) time.Time { return time.Unix(0, n*int64(interval)) }

// Tick runs one round for every scheduled or running campaign, one after
// the other. Failures are logged per campaign and do not stop the others.
func (s *Service) Tick(ctx context.Context) {
	ids, err := s.store.CampaignIDsByStatus(ctx, store.CampaignScheduled, store.CampaignRunning)
	if err != nil {
		s.log.Error("campaign.tick_failed", zap.Error(err))
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		r, err := s.Round(ctx, id)
		if err != nil {
			s.log.Error("campaign.round_failed", zap.String("campaign_id", id.Hex()), zap.Error(err))
			continue
		}
		s.logRound(r)
	}
}
