package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/periodic"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Keys, outside asynq's "asynq:" namespace.
const (
	PresencePrefix = "docshield:fleet:dyno:"  // + dyno: a Presence, expiring
	DrainPrefix    = "docshield:fleet:drain:" // + dyno: set while the dyno must take no new call
)

// DefaultBeat is how often a Member reports and reads its drain flag.
const DefaultBeat = 5 * time.Second

// DrainRetryAfter is how soon a call deferred by a draining dyno is offered
// again, to any dyno.
const DrainRetryAfter = 5 * time.Second

// Presence is what a worker dyno says about itself.
type Presence struct {
	Dyno      string    `json:"dyno"`
	Owner     string    `json:"owner"`
	LiveCalls int       `json:"live_calls"`
	Draining  bool      `json:"draining"`
	At        time.Time `json:"at"`
}

// MemberOptions configure a Member.
type MemberOptions struct {
	Redis redis.UniversalClient
	// Dyno is Heroku's DYNO (worker.3); empty: the worker is never
	// drained and publishes no presence (outside Heroku).
	Dyno string
	// Owner names the process (the claim owner).
	Owner  string
	Beat   time.Duration // 0: DefaultBeat
	Logger *zap.Logger
}

// Member is one worker dyno's part in the fleet: it counts the call tasks
// running here, reads its drain flag and publishes its presence every
// beat. Start once; Shutdown stops the beat and withdraws the presence.
type Member struct {
	// Immutable after NewMember.
	o    MemberOptions
	loop *periodic.Loop

	mu       sync.Mutex // guards the two below, shared by tasks and the beat
	live     int
	draining bool

	// Confined to the beat's goroutine.
	logged bool // draining, as last logged
}

// NewMember checks o and builds the member without starting it.
func NewMember(o MemberOptions) (*Member, error) {
	if o.Redis == nil {
		return nil, errors.New("fleet: MemberOptions.Redis is required")
	}
	if o.Beat <= 0 {
		o.Beat = DefaultBeat
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	m := &Member{o: o}
	m.loop = periodic.New(periodic.Options{Every: o.Beat, Run: m.beat})
	return m, nil
}

// Start beats now and then every beat.
func (m *Member) Start() { m.loop.Start() }

// Shutdown stops beating and withdraws the presence: a stopped dyno holds
// no call.
func (m *Member) Shutdown() {
	m.loop.Shutdown()
	if m.o.Dyno == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = m.o.Redis.Del(ctx, PresencePrefix+m.o.Dyno).Err()
}

// LiveCalls is how many call tasks run here now.
func (m *Member) LiveCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live
}

// Draining reports whether this dyno refuses new calls.
func (m *Member) Draining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.draining
}

// beat reads the drain flag and publishes the presence. A Redis error
// keeps the last known flag: the scaler's bound covers a dyno it cannot
// hear from.
func (m *Member) beat(ctx context.Context) {
	if m.o.Dyno == "" {
		return
	}
	n, err := m.o.Redis.Exists(ctx, DrainPrefix+m.o.Dyno).Result()
	if err != nil {
		return
	}
	m.mu.Lock()
	m.draining = n == 1
	p := Presence{Dyno: m.o.Dyno, Owner: m.o.Owner, LiveCalls: m.live, Draining: m.draining}
	m.mu.Unlock()
	p.At = time.Now()
	if p.Draining != m.logged {
		m.logged = p.Draining
		if p.Draining {
			m.o.Logger.Info("fleet.draining", zap.String("dyno", m.o.Dyno), zap.Int("live_calls", p.LiveCalls))
		} else {
			m.o.Logger.Info("fleet.drain_lifted", zap.String("dyno", m.o.Dyno))
		}
	}
	b, _ := json.Marshal(p)
	if err := m.o.Redis.Set(ctx, PresencePrefix+m.o.Dyno, b, 3*m.o.Beat).Err(); err != nil && ctx.Err() == nil {
		m.o.Logger.Debug("fleet.presence_failed", zap.Error(err))
	}
}

// Draining is returned, without running the task, for a call task that
// arrives at a dyno the scaler is draining: another dyno takes it, and no
// retry is spent (worker.Deferred, worker.RetryDelay).
type Draining struct{ Dyno string }

func (d *Draining) Error() string {
	return fmt.Sprintf("dyno %s is draining before the formation shrinks: call deferred, not run", d.Dyno)
}

// Deferred marks the task as put off rather than failed.
func (*Draining) Deferred() bool { return true }

// RetryAfter offers the task again soon, to any dyno.
func (*Draining) RetryAfter() time.Duration { return DrainRetryAfter }

// Middleware counts the running tasks of the given types (the calls) and
// defers new ones while this dyno drains. Other types pass through.
func (m *Member) Middleware(taskTypes ...string) asynq.MiddlewareFunc {
	return worker.ForTypes(func(ctx context.Context, t *asynq.Task, next asynq.Handler) error {
		m.mu.Lock()
		if m.draining {
			m.mu.Unlock()
			// The server logs task.deferred with this error: one line.
			return &Draining{Dyno: m.o.Dyno}
		}
		m.live++
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			m.live--
			m.mu.Unlock()
		}()
		return next.ProcessTask(ctx, t)
	}, taskTypes...)
}

// ReadPresence returns every dyno's unexpired presence, by dyno name.
func ReadPresence(ctx context.Context, c redis.UniversalClient) (map[string]Presence, error) {
	var keys []string
	var cursor uint64
	for range 1000 { // bounded: far more pages than dynos
		batch, next, err := c.Scan(ctx, cursor, PresencePrefix+"*", 200).Result()
		if err != nil {
			return nil, fmt.Errorf("fleet: scan presence: %w", err)
		}
		keys = append(keys, batch...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	out := map[string]Presence{}
	if len(keys) == 0 {
		return out, nil
	}
	sort.Strings(keys)
	vals, err := c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("fleet: read presence: %w", err)
	}
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired between SCAN and MGET
		}
		var p Presence
		if err := json.Unmarshal([]byte(s), &p); err != nil {
			return nil, fmt.Errorf("fleet: presence %q: %w", s, err)
		}
		out[p.Dyno] = p
	}
	return out, nil
}

// SetDrain sets or lifts the drain flags of dynos. A flag expires after
// ttl, so a scaler that died mid-drain never leaves a dyno refusing calls
// for ever.
func SetDrain(ctx context.Context, c redis.UniversalClient, on bool, ttl time.Duration, dynos ...string) error {
	if len(dynos) == 0 {
		return nil
	}
	pipe := c.TxPipeline()
	for _, d := range dynos {
		if on {
			pipe.Set(ctx, DrainPrefix+d, "1", ttl)
		} else {
			pipe.Del(ctx, DrainPrefix+d)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("fleet: drain flags: %w", err)
	}
	return nil
}
