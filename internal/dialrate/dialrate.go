package dialrate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// KeyPrefix namespaces the buckets, one per trunk, outside asynq's keys.
const KeyPrefix = "docshield:dialrate:"

// DefaultMaxWait bounds how far ahead a dial may book its slot.
const DefaultMaxWait = 30 * time.Second

// bucket is the GCRA in one round trip. KEYS[1] holds the theoretical
// arrival time of the next dial (µs, Redis's clock). ARGV: the emission
// interval (µs between dials), the burst tolerance (µs: (burst-1) ×
// interval), the longest wait a reservation may book (µs), and "1" to
// book a slot or "0" only to look. It returns {booked (1, 0 when only
// looking, -1 when refused), wait in µs}.
var bucket = redis.NewScript(`
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call("GET", KEYS[1]) or "0")
if tat < now then tat = now end
local wait = tat - tonumber(ARGV[2]) - now
if wait < 0 then wait = 0 end
if ARGV[4] ~= "1" then return {0, wait, now + wait} end
if wait > tonumber(ARGV[3]) then return {-1, wait, now + wait} end
local nxt = tat + tonumber(ARGV[1])
redis.call("SET", KEYS[1], string.format("%.0f", nxt), "PX", math.ceil((nxt - now) / 1000) + 1000)
return {1, wait, now + wait}`)

// ErrNoSlot matches a dial refused because its slot would be more than
// MaxWait away.
var ErrNoSlot = errors.New("dial rate: no dial slot within the wait bound")

// SlotError is a dial refused a slot, with how far away the next was.
type SlotError struct {
	Trunk   string
	Wait    time.Duration // until the next free slot
	MaxWait time.Duration
}

func (e *SlotError) Error() string {
	return fmt.Sprintf("dial rate of trunk %s: the next dial slot is %s away, more than %s", e.Trunk,
		e.Wait.Round(time.Millisecond), e.MaxWait)
}

// Is matches ErrNoSlot.
func (e *SlotError) Is(target error) bool { return target == ErrNoSlot }

// Options configure a Limiter; config.Fleet holds the settings.
type Options struct {
	Redis redis.UniversalClient
	// Trunk names the bucket: every worker dialling through the same trunk
	// must use the same name (LIVEKIT_SIP_TRUNK_ID).
	Trunk string
	// PerSecond is the fleet's dial rate on the trunk; above 0.
	PerSecond float64
	// Burst is how many dials may go at once after a quiet spell; 0: 1.
	Burst int
	// MaxWait bounds how far ahead a dial books its slot; 0: DefaultMaxWait.
	MaxWait time.Duration
	Logger  *zap.Logger
}

// Limiter books dial slots on one trunk's bucket. It holds no state of its
// own and is safe for concurrent use.
type Limiter struct {
	o                         Options
	key                       string
	interval, tolerance, maxW int64 // µs
}

// New checks o.
func New(o Options) (*Limiter, error) {
	var errs []error
	if o.Redis == nil {
		errs = append(errs, errors.New("dialrate: Options.Redis is required"))
	}
	if o.Trunk == "" {
		errs = append(errs, errors.New("dialrate: Options.Trunk is required"))
	}
	if !(o.PerSecond > 0) || math.IsInf(o.PerSecond, 0) || o.PerSecond > 1000 {
		errs = append(errs, fmt.Errorf("dialrate: Options.PerSecond must be above 0 and at most 1000, got %g", o.PerSecond))
	}
	if o.Burst < 0 || o.MaxWait < 0 {
		errs = append(errs, errors.New("dialrate: Options.Burst and Options.MaxWait must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.Burst = max(o.Burst, 1)
	if o.MaxWait == 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	interval := int64(math.Round(1e6 / o.PerSecond))
	return &Limiter{o: o, key: KeyPrefix + o.Trunk, interval: interval,
		tolerance: int64(o.Burst-1) * interval, maxW: o.MaxWait.Microseconds()}, nil
}

// run calls the script; book says whether to take a slot. at is when the
// slot comes, by Redis's clock.
func (l *Limiter) run(ctx context.Context, book bool) (booked int64, wait time.Duration, at time.Time, err error) {
	flag := "0"
	if book {
		flag = "1"
	}
	res, err := bucket.Run(ctx, l.o.Redis, []string{l.key}, l.interval, l.tolerance, l.maxW, flag).Int64Slice()
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("dial rate of trunk %s: %w", l.o.Trunk, err)
	}
	if len(res) != 3 {
		return 0, 0, time.Time{}, fmt.Errorf("dial rate of trunk %s: the script answered %v", l.o.Trunk, res)
	}
	return res[0], time.Duration(res[1]) * time.Microsecond, time.UnixMicro(res[2]), nil
}

// Reserve books the next free slot and returns how long until it comes.
// A slot more than MaxWait away is not booked: the error is a *SlotError.
func (l *Limiter) Reserve(ctx context.Context) (time.Duration, error) {
	s, err := l.reserve(ctx)
	return s.Waited, err
}

// Slot is a booked dial slot: when it comes (by Redis's clock, which the
// whole fleet shares), and how long its booker waited or waits for it.
type Slot struct {
	At     time.Time
	Waited time.Duration
}

func (l *Limiter) reserve(ctx context.Context) (Slot, error) {
	booked, wait, at, err := l.run(ctx, true)
	if err != nil {
		return Slot{}, err
	}
	if booked < 0 {
		return Slot{}, &SlotError{Trunk: l.o.Trunk, Wait: wait, MaxWait: l.o.MaxWait}
	}
	return Slot{At: at, Waited: wait}, nil
}

// Wait books the next free slot and sleeps until it comes. It returns how
// long it waited; the slot is lost if ctx ends first.
func (l *Limiter) Wait(ctx context.Context) (time.Duration, error) {
	s, err := l.WaitSlot(ctx)
	return s.Waited, err
}

// WaitSlot is Wait, returning the slot.
func (l *Limiter) WaitSlot(ctx context.Context) (Slot, error) {
	s, err := l.reserve(ctx)
	if err != nil || s.Waited <= 0 {
		return s, err
	}
	t := time.NewTimer(s.Waited)
	defer t.Stop()
	select {
	case <-t.C:
		return s, nil
	case <-ctx.Done():
		return Slot{}, ctx.Err()
	}
}

// Backlog is how long a dial booked now would wait, without booking.
func (l *Limiter) Backlog(ctx context.Context) (time.Duration, error) {
	_, wait, _, err := l.run(ctx, false)
	return wait, err
}

// BeforeDial wraps the runner's last check before a dial (call.Options'
// DialCheck): the call first waits for its slot, then the check runs, so
// the do-not-call list, the campaign's state and its calling hours are
// judged after the wait, right before the phone rings. The slot is logged
// (`dial.slot`, with the wait and the slot's time by the bucket's clock). A slot further than MaxWait away refuses
// the dial with an error naming the rate; nothing was dialled. A nil check
// is no check after the wait.
func (l *Limiter) BeforeDial(check func(context.Context, *store.Call) (string, error)) func(context.Context, *store.Call) (string, error) {
	return func(ctx context.Context, c *store.Call) (string, error) {
		slot, err := l.WaitSlot(ctx)
		if err != nil {
			return "", err
		}
		log := logging.FromContext(ctx)
		if !log.Core().Enabled(zap.FatalLevel) {
			log = l.o.Logger
		}
		// slot_at is the bucket's time for the slot: what the rate holds
		// to. The line's own time adds this process's wake-up lateness.
		log.Info("dial.slot", zap.String("trunk", l.o.Trunk), zap.String("attempt_id", c.ID),
			zap.Int64("waited_ms", slot.Waited.Milliseconds()), zap.Time("slot_at", slot.At))
		if check == nil {
			return "", nil
		}
		return check(ctx, c)
	}
}

// Deferred is returned, without running the task, for a call task that
// arrives while the trunk is booked further ahead than half of MaxWait:
// the task comes back when the booked dials have gone, without spending a
// retry (worker.Deferred, worker.RetryDelay).
type Deferred struct {
	Trunk   string
	Backlog time.Duration
}

func (d *Deferred) Error() string {
	return fmt.Sprintf("dial rate of trunk %s: %s of dials booked ahead: call deferred, not run", d.Trunk,
		d.Backlog.Round(time.Second))
}

// Deferred marks the task as put off rather than failed.
func (*Deferred) Deferred() bool { return true }

// RetryAfter is when the dials booked now will have gone, at least a
// second.
func (d *Deferred) RetryAfter() time.Duration { return max(d.Backlog, time.Second) }

// Middleware defers tasks of the given types while the trunk is booked
// more than half of MaxWait ahead, so that waiting calls do not pile up in
// the workers holding rooms and model sessions. A Redis error lets the
// task run: BeforeDial will then wait or refuse on its own.
func (l *Limiter) Middleware(taskTypes ...string) asynq.MiddlewareFunc {
	return worker.ForTypes(func(ctx context.Context, t *asynq.Task, next asynq.Handler) error {
		backlog, err := l.Backlog(ctx)
		if err == nil && backlog > l.o.MaxWait/2 {
			// The server logs task.deferred with this error: one line.
			return &Deferred{Trunk: l.o.Trunk, Backlog: backlog}
		}
		return next.ProcessTask(ctx, t)
	}, taskTypes...)
}
