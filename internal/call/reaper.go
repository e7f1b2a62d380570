package call

import (
	"context"
	"errors"
	"time"

	"github.com/docshield/voice-worker/internal/metrics"
	"github.com/docshield/voice-worker/internal/periodic"
	"github.com/docshield/voice-worker/internal/store"
	"go.uber.org/zap"
)

// ReaperStore is what the reaper reads and writes; *store.Store.
type ReaperStore interface {
	ReapExpired(ctx context.Context, now time.Time, limit int) ([]store.Reaped, error)
	ApplyRecordedEnds(ctx context.Context, since time.Time, limit int) ([]string, error)
	EndCall(ctx context.Context, c store.Claim, e store.EndRecord) error
}

var _ ReaperStore = (*store.Store)(nil)

// RoomDeleter ends a room and with it every participant in it, the SIP
// leg included (LiveKit hangs up the phone line). *telephony.Rooms.
type RoomDeleter interface {
	Delete(ctx context.Context, room string) error
}

// ReaperOptions configure a Reaper. Store is required.
type ReaperOptions struct {
	Store ReaperStore
	// Ends holds call ends that MongoDB did not take; nil: none.
	Ends EndOutbox
	// Rooms hangs up the calls the reaper settles; nil: this worker has no
	// LiveKit settings, and LiveKit's own limits end those rooms.
	Rooms RoomDeleter
	// Analyze receives call:analyze for the ends the reaper writes.
	Analyze  Enqueuer
	Interval time.Duration // default 30 s
	Logger   *zap.Logger
	Now      func() time.Time
}

// Reaper sees every call through to a true end in MongoDB, whatever
// happened to the worker that placed it. Each pass, in order:
//
//  1. writes the ends that MongoDB did not take when the calls ended
//     (EndOutbox), past the task's deadline and after a restart;
//  2. writes again the recorded ends that a late write undid on the call
//     document (store.ApplyRecordedEnds);
//  3. settles attempts whose owner stopped renewing its lease (it died):
//     as interrupted, never redialled, or as its recorded end; and hangs
//     up an interrupted call's room, so no phone line stays open with
//     nobody on our side. An attempt claimed but never started is
//     cancelled (it was never dialed) and its analysis enqueued, so its
//     contact is due again at once.
//
// One goroutine (a periodic.Loop), started and stopped by its owner, as
// asynq runs its recoverer.
type Reaper struct {
	// Immutable after NewReaper.
	o    ReaperOptions
	loop *periodic.Loop
}

// ReapLimit bounds one pass; the next pass takes the rest.
const ReapLimit = 100

// endLookback is how far back a pass looks for recorded ends the call
// documents lost. Late writes land within seconds; an hour is plenty.
const endLookback = time.Hour

// maxPendingAge bounds how long an end waits in the outbox: past it the
// end is given up (logged) and the call is settled like any other.
const maxPendingAge = 24 * time.Hour

// NewReaper builds a reaper.
func NewReaper(o ReaperOptions) *Reaper {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Reaper{o: o}
	r.loop = periodic.New(periodic.Options{Every: o.Interval, Run: r.Pass})
	return r
}

// Start runs a pass now and then every Interval, until Shutdown.
func (r *Reaper) Start() { r.loop.Start() }

// Shutdown stops the passes, cancelling one in progress, and waits.
func (r *Reaper) Shutdown() { r.loop.Shutdown() }

// Pass does one round of the three duties. It logs and carries on after
// errors: a database hiccup only delays settling to the next pass.
func (r *Reaper) Pass(ctx context.Context) {
	log := r.o.Logger
	report := func(what string, err error) {
		if err != nil && ctx.Err() == nil {
			log.Error("call.reap_failed", zap.String("step", what), zap.Error(err))
		}
	}
	report("write pending ends", r.writePending(ctx))

	now := r.o.Now()
	applied, err := r.o.Store.ApplyRecordedEnds(ctx, now.Add(-endLookback), ReapLimit)
	for _, id := range applied {
		log.Warn("call.end_repaired", zap.String("attempt_id", id),
			zap.String("reason", "a late write had undone the call's recorded end"))
		enqueueAnalysis(ctx, r.o.Analyze, id, log)
	}
	report("repair recorded ends", err)

	reaped, err := r.o.Store.ReapExpired(ctx, now, ReapLimit)
	for _, c := range reaped {
		if c.Recorded {
			log.Warn("call.end_repaired", zap.String("attempt_id", c.AttemptID), zap.String("status", string(c.Status)),
				zap.String("reason", "the owner stopped renewing its lease after recording the call's end"))
			enqueueAnalysis(ctx, r.o.Analyze, c.AttemptID, log)
			continue
		}
		if c.Status == store.CallCancelled {
			// Claimed, never started, never dialed: its contact is due
			// again, which the analysis applies now rather than the
			// dispatcher's repair round SettleAfter later.
			log.Warn("call.reaped", zap.String("attempt_id", c.AttemptID), zap.String("status", string(c.Status)),
				zap.String("reason", "claimed but never started: the claim's lease lapsed (worker died or lost the database)"))
			enqueueAnalysis(ctx, r.o.Analyze, c.AttemptID, log)
			continue
		}
		log.Warn("call.reaped", zap.String("attempt_id", c.AttemptID), zap.String("status", string(c.Status)),
			zap.String("reason", "owner stopped renewing its lease (worker died or lost the database)"))
		r.hangUp(ctx, c)
	}
	report("reap lapsed leases", err)
}

// writePending writes the ends waiting in the outbox.
func (r *Reaper) writePending(ctx context.Context) error {
	if r.o.Ends == nil {
		return nil
	}
	pending, err := r.o.Ends.List(ctx, ReapLimit)
	if err != nil && len(pending) == 0 {
		return err
	}
	log := r.o.Logger
	for _, p := range pending {
		id := p.Claim.AttemptID
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		werr := r.o.Store.EndCall(wctx, p.Claim, p.End)
		cancel()
		switch {
		case werr == nil:
			log.Info("call.ended", zap.String("attempt_id", id), zap.String("status", string(p.End.Status)),
				zap.String("reason", p.End.Details.EndReason), zap.String("outcome", p.End.Fields.Outcome),
				zap.Duration("pending_for", r.o.Now().Sub(p.Since)))
			metrics.CallEnded(string(p.End.Status), p.End.Fields.Outcome)
			enqueueAnalysis(ctx, r.o.Analyze, id, log)
		case errors.Is(werr, store.ErrFenceMismatch) || errors.Is(werr, store.ErrInvalidTransition):
			log.Warn("call.end_superseded", zap.String("attempt_id", id), zap.Error(werr))
		case r.o.Now().Sub(p.Since) > maxPendingAge:
			log.Error("call.end_not_recorded", zap.String("attempt_id", id), zap.String("status", string(p.End.Status)),
				zap.Duration("pending_for", r.o.Now().Sub(p.Since)), zap.Error(werr))
		default:
			continue // MongoDB is still away: the next pass tries again
		}
		if derr := r.o.Ends.Delete(ctx, id); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	return err
}

// hangUp deletes the room of a call whose worker died: LiveKit removes the
// SIP participant with it, which hangs up the phone line.
func (r *Reaper) hangUp(ctx context.Context, c store.Reaped) {
	if c.Room == "" || r.o.Rooms == nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := r.o.Rooms.Delete(hctx, c.Room); err != nil {
		r.o.Logger.Warn("call.hangup_failed", zap.String("attempt_id", c.AttemptID), zap.String("room", c.Room), zap.Error(err))
		return
	}
	r.o.Logger.Info("call.hung_up", zap.String("attempt_id", c.AttemptID), zap.String("room", c.Room),
		zap.String("reason", "reaped"))
}
