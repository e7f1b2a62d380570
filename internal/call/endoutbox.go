package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/redis/go-redis/v9"
)

// PendingEnd is a call's end that MongoDB did not take when the call
// ended: the claim it belongs to, and the end.
type PendingEnd struct {
	Claim store.Claim     `json:"claim"`
	End   store.EndRecord `json:"end"`
	// Since is when it was first put aside.
	Since time.Time `json:"since"`
}

// EndOutbox keeps the ends of calls that MongoDB could not take, outside
// the process, so that a later pass writes them: the reaper of this
// worker, or of any worker after this one died. *RedisEndOutbox is the
// real one.
type EndOutbox interface {
	Put(ctx context.Context, p PendingEnd) error
	List(ctx context.Context, limit int) ([]PendingEnd, error)
	Delete(ctx context.Context, attemptID string) error
}

// RedisEndOutbox keeps pending ends in one Redis hash, field = attempt id,
// with an in-memory fallback for when Redis is away too (lost if the
// process dies then: the reaper settles those calls as interrupted).
//
// Redis is no place for patient data (README, guarantees), so what goes
// there is stripped of the free text a model wrote (disposition and
// callback notes; the keeper wrote those to the call document during the
// call) and of phone numbers in reasons and errors.
type RedisEndOutbox struct {
	rdb redis.UniversalClient

	mu  sync.Mutex            // guards mem
	mem map[string]PendingEnd // put while Redis was unreachable
}

// endOutboxKey is the Redis hash of pending ends.
const endOutboxKey = "docshield:call_ends:pending"

// NewRedisEndOutbox keeps pending ends in rdb.
func NewRedisEndOutbox(rdb redis.UniversalClient) *RedisEndOutbox {
	return &RedisEndOutbox{rdb: rdb, mem: map[string]PendingEnd{}}
}

// Put keeps p; it fails only when neither Redis nor memory took it.
func (o *RedisEndOutbox) Put(ctx context.Context, p PendingEnd) error {
	if p.Claim.AttemptID == "" {
		return errors.New("call: end outbox: PendingEnd.Claim.AttemptID is empty")
	}
	if p.Since.IsZero() {
		p.Since = time.Now()
	}
	b, err := json.Marshal(withoutPatientText(p))
	if err != nil {
		return fmt.Errorf("call: end outbox: encode: %w", err)
	}
	if err := o.rdb.HSet(ctx, endOutboxKey, p.Claim.AttemptID, b).Err(); err != nil {
		o.mu.Lock()
		o.mem[p.Claim.AttemptID] = p
		o.mu.Unlock()
		return nil
	}
	return nil
}

// List returns up to limit pending ends, those held in memory first.
func (o *RedisEndOutbox) List(ctx context.Context, limit int) ([]PendingEnd, error) {
	o.mu.Lock()
	var out []PendingEnd
	for _, p := range o.mem {
		if len(out) < limit {
			out = append(out, p)
		}
	}
	o.mu.Unlock()
	vals, err := o.rdb.HGetAll(ctx, endOutboxKey).Result()
	if err != nil {
		return out, fmt.Errorf("call: end outbox: read: %w", err)
	}
	for id, v := range vals {
		if len(out) >= limit {
			break
		}
		var p PendingEnd
		if err := json.Unmarshal([]byte(v), &p); err != nil || p.Claim.AttemptID != id {
			// Not ours to guess at; an operator can read it in Redis.
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// Delete forgets the pending end of attemptID.
func (o *RedisEndOutbox) Delete(ctx context.Context, attemptID string) error {
	o.mu.Lock()
	delete(o.mem, attemptID)
	o.mu.Unlock()
	if err := o.rdb.HDel(ctx, endOutboxKey, attemptID).Err(); err != nil {
		return fmt.Errorf("call: end outbox: delete %s: %w", attemptID, err)
	}
	return nil
}

// withoutPatientText strips what must not rest in Redis.
func withoutPatientText(p PendingEnd) PendingEnd {
	d := &p.End.Details
	d.DispositionNote, d.CallbackNote = "", ""
	d.EndReason = logging.RedactString(d.EndReason)
	d.RecordingError = logging.RedactString(d.RecordingError)
	p.End.Fields.Error = logging.RedactString(p.End.Fields.Error)
	p.End.Fields.ToolCalls = nil
	return p
}
