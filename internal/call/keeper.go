package call

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"go.uber.org/zap"
)

// keeper writes the call document while the call is live: transcript
// turns and tool calls as they complete, details as they are learned, and
// the lease every third of its length. One goroutine does every write, in
// order, so the call's loop never waits for MongoDB on the audio path.
// A write that finds the claim gone closes lost; nothing more is written.
//
// Immutable after start: st, claim, lease, log and the channels. The
// goroutine owns everything else; close stops it after the queued writes.
type keeper struct {
	st    CallStore
	claim store.Claim
	lease time.Duration
	log   *zap.Logger

	writes chan keeperWrite
	stop   chan struct{}
	done   chan struct{}
	lost   chan struct{}

	stopOnce, lostOnce sync.Once
}

type keeperWrite struct {
	what string
	do   func(context.Context) error
}

// keeperQueue bounds the writes waiting for MongoDB: a few a minute in a
// conversation, so a full queue means the database has been away for
// minutes, and dropping (logged) is better than stalling the call.
const keeperQueue = 256

func startKeeper(st CallStore, claim store.Claim, lease time.Duration, log *zap.Logger) *keeper {
	k := &keeper{
		st: st, claim: claim, lease: lease, log: log,
		writes: make(chan keeperWrite, keeperQueue),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		lost:   make(chan struct{}),
	}
	go k.run()
	return k
}

func (k *keeper) run() {
	defer close(k.done)
	renew := time.NewTicker(k.lease / 3)
	defer renew.Stop()
	for {
		select {
		case w := <-k.writes:
			k.do(w)
		case <-renew.C:
			k.do(keeperWrite{"extend lease", func(ctx context.Context) error {
				return k.st.ExtendLease(ctx, k.claim, k.lease)
			}})
		case <-k.stop:
			for {
				select {
				case w := <-k.writes:
					k.do(w)
				default:
					return
				}
			}
		}
	}
}

func (k *keeper) do(w keeperWrite) {
	if k.isLost() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err := w.do(ctx)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrFenceMismatch):
		k.log.Warn("call.claim_lost", zap.String("write", w.what), zap.Error(err))
		k.lostOnce.Do(func() { close(k.lost) })
	default:
		k.log.Warn("call.write_failed", zap.String("write", w.what), zap.Error(err))
	}
}

func (k *keeper) submit(what string, do func(context.Context) error) {
	select {
	case k.writes <- keeperWrite{what, do}:
	default:
		k.log.Error("call.write_dropped", zap.String("write", what), zap.Int("queued", keeperQueue))
	}
}

func (k *keeper) appendTurn(t store.Turn) {
	k.submit("append turn", func(ctx context.Context) error { return k.st.AppendTurn(ctx, k.claim, t) })
}

func (k *keeper) appendToolCall(tc store.ToolCall) {
	k.submit("append tool call", func(ctx context.Context) error { return k.st.AppendToolCall(ctx, k.claim, tc) })
}

func (k *keeper) recordDetails(d store.CallDetails) {
	k.submit("record details", func(ctx context.Context) error { return k.st.RecordCallDetails(ctx, k.claim, d) })
}

// Lost is closed once the claim turned out to be gone (the attempt was
// reaped or ended by someone else).
func (k *keeper) Lost() <-chan struct{} { return k.lost }

func (k *keeper) isLost() bool {
	select {
	case <-k.lost:
		return true
	default:
		return false
	}
}

// close writes what is queued and stops the goroutine. Idempotent.
func (k *keeper) close() {
	k.stopOnce.Do(func() { close(k.stop) })
	<-k.done
}
