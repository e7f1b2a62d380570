package call

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Reaper settles attempts whose owner died mid-call (its lease lapsed) as
// interrupted, so a killed worker's calls end with what reached storage and
// are never redialled silently; the campaign's retry policy decides what
// happens next. One goroutine, started and stopped by its owner, as asynq
// runs its recoverer.
type Reaper struct {
	// Immutable after NewReaper.
	reap     func(ctx context.Context, now time.Time, limit int) ([]string, error)
	interval time.Duration
	log      *zap.Logger
	now      func() time.Time

	// Confined to Start/Shutdown's caller.
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ReapLimit bounds one pass; the next pass takes the rest.
const ReapLimit = 100

// NewReaper builds a reaper calling reap (store.ReapExpired) every interval.
func NewReaper(reap func(ctx context.Context, now time.Time, limit int) ([]string, error), interval time.Duration, log *zap.Logger) *Reaper {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	return &Reaper{reap: reap, interval: interval, log: log, now: time.Now}
}

// Start runs passes until Shutdown.
func (r *Reaper) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			r.Pass(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Shutdown stops the goroutine and waits for a pass in progress.
func (r *Reaper) Shutdown() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}

// Pass settles what has lapsed now. It logs and carries on after errors: a
// database hiccup only delays settling to the next pass.
func (r *Reaper) Pass(ctx context.Context) {
	ids, err := r.reap(ctx, r.now(), ReapLimit)
	for _, id := range ids {
		r.log.Warn("call.reaped", zap.String("attempt_id", id), zap.String("status", "interrupted"),
			zap.String("reason", "owner stopped renewing its lease (worker died or lost the database)"))
	}
	if err != nil && ctx.Err() == nil {
		r.log.Error("call.reap_failed", zap.Error(err))
	}
}
