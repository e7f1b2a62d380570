package call

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"go.uber.org/zap"
)

// keeper is the one writer of a live call's document: status steps,
// transcript turns and tool calls as they complete, details as they are
// learned, and the lease every third of its length. One goroutine does
// every write, in order, so
//   - the call's loop never waits for MongoDB: not between the answer and
//     the greeting, not between one turn and the next;
//   - no two writes of the attempt are in flight at once, which FerretDB's
//     read-modify-write updates need (internal/store's package doc);
//   - turns that queued up while a write was slow go in one write.
//
// A failed write is retried (bounded) before the next one starts; the
// appends are idempotent, so a retry of a write that landed anyway adds
// nothing. A write that finds the claim gone closes lost; nothing more is
// written. The terminal write is not the keeper's: it comes after close,
// through the store's recorded end (see finish).
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
	turn *store.Turn // set for transcript turns, which are batched
	do   func(context.Context) error
}

// keeperQueue bounds the writes waiting for MongoDB: a few a minute in a
// conversation, so a full queue means the database has been away for
// minutes, and dropping (logged) is better than stalling the call.
const keeperQueue = 256

// Retries of one write: its tries are spaced by keeperBackoff, doubling.
// Bounded, so an outage delays the writes behind it by seconds, not for
// ever; the lease then lapses and the reaper settles the call.
const (
	keeperTries   = 3
	keeperBackoff = 250 * time.Millisecond
)

// newKeeper writes for claim, renewing it every third of the lease it was
// made with: the lease is set in one place, the Handler's.
func newKeeper(st CallStore, claim store.Claim, log *zap.Logger) *keeper {
	lease := claim.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	return &keeper{
		st: st, claim: claim, lease: lease, log: log,
		writes: make(chan keeperWrite, keeperQueue),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		lost:   make(chan struct{}),
	}
}

// start starts the writing goroutine; close stops it.
func (k *keeper) start() { go k.run() }

func (k *keeper) run() {
	defer close(k.done)
	renew := time.NewTicker(k.lease / 3)
	defer renew.Stop()
	for {
		select {
		case w := <-k.writes:
			k.write(w)
		case <-renew.C:
			k.do(keeperWrite{what: "extend lease", do: func(ctx context.Context) error {
				return k.st.ExtendLease(ctx, k.claim, k.lease)
			}})
		case <-k.stop:
			for {
				select {
				case w := <-k.writes:
					k.write(w)
				default:
					return
				}
			}
		}
	}
}

// write does w, batching it with the transcript turns queued right behind
// it.
func (k *keeper) write(w keeperWrite) {
	if w.turn == nil {
		k.do(w)
		return
	}
	turns := []store.Turn{*w.turn}
	var next *keeperWrite
	for next == nil {
		select {
		case n := <-k.writes:
			if n.turn != nil {
				turns = append(turns, *n.turn)
				continue
			}
			next = &n
		default:
			next = &keeperWrite{}
		}
	}
	k.do(keeperWrite{what: "append turns", do: func(ctx context.Context) error {
		return k.st.AppendTurns(ctx, k.claim, turns...)
	}})
	if next.do != nil {
		k.do(*next)
	}
}

func (k *keeper) do(w keeperWrite) {
	backoff := keeperBackoff
	for try := 1; ; try++ {
		if k.isLost() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := w.do(ctx)
		cancel()
		switch {
		case err == nil:
			return
		case errors.Is(err, store.ErrFenceMismatch):
			k.log.Warn("call.claim_lost", zap.String("write", w.what), zap.Error(err))
			k.lostOnce.Do(func() { close(k.lost) })
			return
		case errors.Is(err, store.ErrInvalidTransition) || try == keeperTries:
			k.log.Warn("call.write_failed", zap.String("write", w.what), zap.Int("tries", try), zap.Error(err))
			return
		}
		time.Sleep(backoff) // confined to this goroutine; the call does not wait
		backoff *= 2
	}
}

func (k *keeper) submit(w keeperWrite) {
	select {
	case k.writes <- w:
	default:
		k.log.Error("call.write_dropped", zap.String("write", w.what), zap.Int("queued", keeperQueue))
	}
}

// transition records a step of the call (ringing, in progress).
func (k *keeper) transition(to store.CallStatus, f store.CallFields) {
	k.submit(keeperWrite{what: "transition to " + string(to), do: func(ctx context.Context) error {
		return k.st.Transition(ctx, k.claim, to, f)
	}})
}

func (k *keeper) appendTurn(t store.Turn) {
	k.submit(keeperWrite{what: "append turn", turn: &t})
}

func (k *keeper) appendToolCall(tc store.ToolCall) {
	k.submit(keeperWrite{what: "append tool call", do: func(ctx context.Context) error {
		return k.st.AppendToolCall(ctx, k.claim, tc)
	}})
}

func (k *keeper) recordDetails(d store.CallDetails) {
	k.submit(keeperWrite{what: "record details", do: func(ctx context.Context) error {
		return k.st.RecordCallDetails(ctx, k.claim, d)
	}})
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
