package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/docshield/voice-worker/internal/fleet"
	"github.com/docshield/voice-worker/internal/periodic"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// StateKey holds the scaler's state (State) for whichever worker leads.
const StateKey = "docshield:fleet:scaler"

// Options configure a Scaler; config.Autoscale holds the settings.
type Options struct {
	Redis     redis.UniversalClient
	Inspector *asynq.Inspector
	API       Formations
	// Leader says whether this worker runs the scaler now
	// (elect.Elector.Leader, role "scaler").
	Leader      func() bool
	ProcessType string // the formation's type: dynos are <type>.<n>

	MinDynos, MaxDynos int
	CallsPerDyno       int
	TargetLatency      time.Duration
	Interval           time.Duration
	UpCooldown         time.Duration
	DownCooldown       time.Duration
	DrainTimeout       time.Duration
	Logger             *zap.Logger
	Now                func() time.Time // nil: time.Now
}

// State is what the scaler keeps in Redis between looks.
type State struct {
	LastChange time.Time `json:"last_change"`
	Drain      *Drain    `json:"drain,omitempty"`
}

// Drain is a shrink in progress: dynos To+1 … From are draining.
type Drain struct {
	From     int       `json:"from"`
	To       int       `json:"to"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
}

// Load is what the calls queue asks for.
type Load struct {
	Active, Waiting int // running; pending or deferred
	Latency         time.Duration
}

// Scaler is the formation scaler, one goroutine. Start once; Shutdown
// stops it (a drain in progress stays in Redis for the next leader).
type Scaler struct {
	o    Options
	loop *periodic.Loop

	// Confined to the loop's goroutine.
	failing string // the last error logged, so an outage is logged once
}

// New checks o and builds the scaler without starting it.
func New(o Options) (*Scaler, error) {
	var errs []error
	if o.Redis == nil || o.Inspector == nil || o.API == nil || o.Leader == nil {
		errs = append(errs, errors.New("scaler: Options.Redis, Inspector, API and Leader are required"))
	}
	if o.ProcessType == "" {
		errs = append(errs, errors.New("scaler: Options.ProcessType is required"))
	}
	if o.MinDynos < 1 || o.MaxDynos < o.MinDynos || o.CallsPerDyno < 1 {
		errs = append(errs, fmt.Errorf("scaler: need 1 <= MinDynos (%d) <= MaxDynos (%d) and CallsPerDyno (%d) >= 1", o.MinDynos, o.MaxDynos, o.CallsPerDyno))
	}
	if o.Interval <= 0 || o.DrainTimeout <= 0 || o.TargetLatency <= 0 {
		errs = append(errs, errors.New("scaler: Options.Interval, DrainTimeout and TargetLatency must be positive"))
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
	s := &Scaler{o: o}
	s.loop = periodic.New(periodic.Options{Every: o.Interval, Run: s.run})
	return s, nil
}

// Start looks now and then every interval.
func (s *Scaler) Start() { s.loop.Start() }

// Shutdown stops looking.
func (s *Scaler) Shutdown() { s.loop.Shutdown() }

// Dyno is the name Heroku gives the n-th dyno of the type.
func (s *Scaler) Dyno(n int) string { return s.o.ProcessType + "." + strconv.Itoa(n) }

func (s *Scaler) dynos(from, to int) []string {
	var out []string
	for n := from; n <= to; n++ {
		out = append(out, s.Dyno(n))
	}
	return out
}

// Want is how many dynos load asks for, now that there are current.
func (s *Scaler) Want(load Load, current int) int {
	want := (load.Active + load.Waiting + s.o.CallsPerDyno - 1) / s.o.CallsPerDyno
	if load.Latency > s.o.TargetLatency && want <= current {
		want = current + 1
	}
	return min(max(want, s.o.MinDynos), s.o.MaxDynos)
}

func (s *Scaler) run(ctx context.Context) {
	if !s.o.Leader() {
		return
	}
	if err := s.step(ctx); err != nil && ctx.Err() == nil {
		if msg := err.Error(); msg != s.failing {
			s.failing = msg
			s.o.Logger.Warn("scaler.failed", zap.Error(err))
		}
		return
	}
	s.failing = ""
}

// step is one look: read, decide, act.
func (s *Scaler) step(ctx context.Context) error {
	f, err := s.o.API.Formation(ctx)
	if err != nil {
		return err
	}
	load, err := s.load()
	if err != nil {
		return err
	}
	st, err := s.state(ctx)
	if err != nil {
		return err
	}
	now := s.o.Now()
	want := s.Want(load, f.Quantity)
	fields := []zap.Field{zap.Int("active_calls", load.Active), zap.Int("waiting_calls", load.Waiting),
		zap.Duration("latency", load.Latency), zap.Int("calls_per_dyno", s.o.CallsPerDyno)}
	if d := st.Drain; d != nil {
		return s.continueDrain(ctx, st, f, want, now, fields)
	}
	switch {
	case want > f.Quantity && now.Sub(st.LastChange) >= s.o.UpCooldown:
		// A dyno of a number coming back must not find an old flag.
		if err := fleet.SetDrain(ctx, s.o.Redis, false, 0, s.dynos(f.Quantity+1, want)...); err != nil {
			return err
		}
		if _, err := s.o.API.Scale(ctx, want); err != nil {
			return err
		}
		st.LastChange = now
		s.o.Logger.Info("scaler.scaled", append(fields, zap.Int("from", f.Quantity), zap.Int("to", want), zap.String("reason", "load"))...)
		return s.save(ctx, st)
	case want < f.Quantity && now.Sub(st.LastChange) >= s.o.DownCooldown:
		d := &Drain{From: f.Quantity, To: want, Started: now, Deadline: now.Add(s.o.DrainTimeout)}
		if err := fleet.SetDrain(ctx, s.o.Redis, true, s.o.DrainTimeout+3*s.o.Interval, s.dynos(want+1, f.Quantity)...); err != nil {
			return err
		}
		st.Drain = d
		s.o.Logger.Info("scaler.draining", append(fields, zap.Int("from", d.From), zap.Int("to", d.To),
			zap.Strings("dynos", s.dynos(want+1, f.Quantity)), zap.Time("deadline", d.Deadline))...)
		return s.save(ctx, st)
	}
	return nil
}

// continueDrain shrinks the formation once the draining dynos hold no
// call (or the bound passed), or cancels the drain when it no longer
// fits: more demand, or a formation someone else changed.
func (s *Scaler) continueDrain(ctx context.Context, st State, f Formation, want int, now time.Time, fields []zap.Field) error {
	d := st.Drain
	draining := s.dynos(d.To+1, d.From)
	if f.Quantity != d.From || want > d.To {
		reason := "more calls than the smaller formation takes"
		if f.Quantity != d.From {
			reason = fmt.Sprintf("the formation is %d, not the %d the drain started from", f.Quantity, d.From)
		}
		if err := fleet.SetDrain(ctx, s.o.Redis, false, 0, draining...); err != nil {
			return err
		}
		st.Drain = nil
		s.o.Logger.Info("scaler.drain_cancelled", append(fields, zap.Int("from", d.From), zap.Int("to", d.To), zap.String("reason", reason))...)
		return s.save(ctx, st)
	}
	presence, err := fleet.ReadPresence(ctx, s.o.Redis)
	if err != nil {
		return err
	}
	live, unsettled := 0, 0
	for _, name := range draining {
		p, ok := presence[name]
		if !ok {
			continue // gone, or silent for three beats: no call there
		}
		live += p.LiveCalls
		if !p.Draining || p.LiveCalls > 0 {
			unsettled++
		}
	}
	reason := "drained"
	if unsettled > 0 {
		if now.Before(d.Deadline) {
			return nil
		}
		reason = "drain timeout"
	}
	if _, err := s.o.API.Scale(ctx, d.To); err != nil {
		return err
	}
	st.Drain, st.LastChange = nil, now
	fields = append(fields, zap.Int("from", d.From), zap.Int("to", d.To), zap.String("reason", reason),
		zap.Duration("drained_for", now.Sub(d.Started)))
	if reason == "drained" {
		s.o.Logger.Info("scaler.scaled", fields...)
	} else {
		s.o.Logger.Warn("scaler.scaled", append(fields, zap.Int("live_calls_cut", live))...)
	}
	return s.save(ctx, st)
}

// load reads the calls queue: what runs, and what waits now (pending,
// and deferred tasks, which come back within seconds).
func (s *Scaler) load() (Load, error) {
	queues, err := s.o.Inspector.Queues()
	if err != nil {
		return Load{}, fmt.Errorf("scaler: list queues: %w", err)
	}
	if !slices.Contains(queues, tasks.QueueCalls) {
		return Load{}, nil // no call was ever queued
	}
	q, err := s.o.Inspector.GetQueueInfo(tasks.QueueCalls)
	if err != nil {
		return Load{}, fmt.Errorf("scaler: calls queue: %w", err)
	}
	return Load{Active: q.Active, Waiting: q.Pending + q.Retry, Latency: q.Latency}, nil
}

func (s *Scaler) state(ctx context.Context) (State, error) {
	var st State
	b, err := s.o.Redis.Get(ctx, StateKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("scaler: read state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("scaler: state %s: %w", StateKey, err)
	}
	return st, nil
}

func (s *Scaler) save(ctx context.Context, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := s.o.Redis.Set(ctx, StateKey, b, 0).Err(); err != nil {
		return fmt.Errorf("scaler: save state: %w", err)
	}
	return nil
}
