package elect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/periodic"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// DefaultLease is how long a lease lasts without renewal: how long the
// fleet may go without a leader after one dies.
const DefaultLease = 15 * time.Second

// KeyPrefix namespaces the leases, outside asynq's "asynq:" keys.
const KeyPrefix = "docshield:leader:"

// driftMargin is the part of a lease a holder gives up early, for clock
// drift between it and Redis.
const driftMargin = 10

// renew extends the lease only while it is still the caller's.
var renew = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// release deletes the lease only while it is still the caller's.
var release = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// Options configure an Elector.
type Options struct {
	Redis redis.UniversalClient
	// Role names what is led ("reporter", "scaler"); the key is
	// KeyPrefix + Role.
	Role string
	// Owner names this process in the logs and in the key's value (the
	// claim owner, e.g. "worker.3/42").
	Owner string
	// Lease is the lease's length; 0: DefaultLease. At least 1s.
	Lease  time.Duration
	Logger *zap.Logger
	// Now is a seam for tests; nil: time.Now.
	Now func() time.Time
}

// Elector takes part in one election: it tries for the lease every third
// of a lease, and renews it while it holds it. Start once; Shutdown gives
// the lease up.
type Elector struct {
	// Immutable after New.
	o     Options
	key   string
	token string
	loop  *periodic.Loop

	mu    sync.Mutex // guards until: written by the loop, read by Leader
	until time.Time  // the lease is ours until then; zero: not ours

	// Confined to the loop's goroutine.
	leading bool // as last logged
}

// New checks o and builds the elector without starting it.
func New(o Options) (*Elector, error) {
	var errs []error
	if o.Redis == nil {
		errs = append(errs, errors.New("elect: Options.Redis is required"))
	}
	if o.Role == "" || o.Owner == "" {
		errs = append(errs, errors.New("elect: Options.Role and Options.Owner are required"))
	}
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.Lease < time.Second {
		errs = append(errs, fmt.Errorf("elect: Options.Lease %s is under 1s", o.Lease))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	e := &Elector{o: o, key: KeyPrefix + o.Role, token: o.Owner + "#" + hex.EncodeToString(b[:])}
	e.loop = periodic.New(periodic.Options{Every: o.Lease / 3, Run: e.try})
	return e, nil
}

// Start tries for the lease now and then every third of a lease.
func (e *Elector) Start() { e.loop.Start() }

// Shutdown stops trying and, if this process holds the lease, gives it up
// so that another takes over at its next try rather than a lease later.
func (e *Elector) Shutdown() {
	e.loop.Shutdown()
	if !e.Leader() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e.set(time.Time{})
	if err := release.Run(ctx, e.o.Redis, []string{e.key}, e.token).Err(); err != nil {
		e.o.Logger.Warn("leader.release_failed", zap.String("role", e.o.Role), zap.Error(err))
		return
	}
	e.o.Logger.Info("leader.released", zap.String("role", e.o.Role))
}

// Leader reports whether this process holds the lease now.
func (e *Elector) Leader() bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.o.Now().Before(e.until)
}

// Holder is the owner of the lease as Redis has it now ("" when nobody
// holds it), for `worker verify fleet` and tests.
func Holder(ctx context.Context, c redis.UniversalClient, role string) (string, error) {
	owner, _, err := HolderAndLeft(ctx, c, role)
	return owner, err
}

// HolderAndLeft is Holder with the time left on the lease (0 when nobody
// holds it).
func HolderAndLeft(ctx context.Context, c redis.UniversalClient, role string) (string, time.Duration, error) {
	key := KeyPrefix + role
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		get, ttl = p.Get(ctx, key), p.PTTL(ctx, key)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", 0, fmt.Errorf("elect: read the %s lease: %w", role, err)
	}
	v, err := get.Result()
	if errors.Is(err, redis.Nil) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("elect: read the %s lease: %w", role, err)
	}
	if i := lastHash(v); i >= 0 {
		v = v[:i]
	}
	return v, max(ttl.Val(), 0), nil
}

func lastHash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '#' {
			return i
		}
	}
	return -1
}

// try renews the lease if it is ours, or takes it if it is free.
func (e *Elector) try(ctx context.Context) {
	sent := e.o.Now()
	var ok bool
	var err error
	if e.Leader() {
		var n int64
		n, err = renew.Run(ctx, e.o.Redis, []string{e.key}, e.token, e.o.Lease.Milliseconds()).Int64()
		ok = n == 1
	} else {
		ok, err = e.o.Redis.SetNX(ctx, e.key, e.token, e.o.Lease).Result()
	}
	if ctx.Err() != nil {
		return // shutting down: Shutdown releases
	}
	switch {
	case err != nil:
		// Unknown: keep what we have until it runs out on its own; Leader
		// turns false then without another word from Redis.
		if e.leading && !e.Leader() {
			e.note(false, zap.Error(err))
		}
		return
	case ok:
		e.set(sent.Add(e.o.Lease - e.o.Lease/driftMargin))
	default:
		e.set(time.Time{})
	}
	e.note(ok)
}

func (e *Elector) set(until time.Time) {
	e.mu.Lock()
	e.until = until
	e.mu.Unlock()
}

// note logs a change of leadership once.
func (e *Elector) note(leading bool, fields ...zap.Field) {
	if leading == e.leading {
		return
	}
	e.leading = leading
	fields = append([]zap.Field{zap.String("role", e.o.Role), zap.Duration("lease", e.o.Lease)}, fields...)
	if leading {
		e.o.Logger.Info("leader.elected", fields...)
		return
	}
	e.o.Logger.Warn("leader.lost", fields...)
}
