// Package periodic runs one duty at intervals on one goroutine, the shape
// every background part of the worker has, as asynq runs its heartbeater
// and janitor: New builds it, Start starts it, Shutdown cancels the run in
// progress (through its context) and waits for the goroutine. The reaper,
// the campaign dispatch ticker, the monitor's checks, heartbeat and
// evaluator, the queue janitor and the recording spool's sweeper are each
// a Loop.
package periodic

import (
	"context"
	"sync"
	"time"
)

// Ticker is what a Loop waits on between runs; tests tick by hand.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Options say what a Loop runs and when. Run and one of Every or Next
// are required.
type Options struct {
	// Run is one pass of the duty. Its context ends at Shutdown.
	Run func(ctx context.Context)
	// Every: a run at Start, then one every Every.
	Every time.Duration
	// NewTicker, with Every, replaces the real ticker (tests).
	NewTicker func(every time.Duration) Ticker
	// Next, instead of Every: the wait before each run, the first one
	// included, from the time given (a schedule aligned to the clock).
	Next func(now time.Time) time.Duration
}

// Loop is one duty on one goroutine.
type Loop struct {
	// Immutable after New.
	o Options

	// Confined to Start/Shutdown's caller.
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds a Loop; Start runs it.
func New(o Options) *Loop {
	if o.Run == nil || (o.Every <= 0 && o.Next == nil) {
		panic("periodic: Options.Run and Options.Every or Options.Next are required")
	}
	return &Loop{o: o}
}

// Start starts the goroutine (its ticker exists when Start returns). Call
// it once.
func (l *Loop) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.wg.Add(1)
	if l.o.Next != nil {
		go func() {
			defer l.wg.Done()
			l.scheduled(ctx)
		}()
		return
	}
	var t Ticker = realTicker{time.NewTicker(l.o.Every)}
	if l.o.NewTicker != nil {
		t = l.o.NewTicker(l.o.Every)
	}
	go func() {
		defer l.wg.Done()
		l.every(ctx, t)
	}()
}

// Shutdown cancels a run in progress, stops the goroutine and waits for
// it. It may be called more than once, and before Start.
func (l *Loop) Shutdown() {
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
}

func (l *Loop) every(ctx context.Context, t Ticker) {
	defer t.Stop()
	for {
		l.o.Run(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			if ctx.Err() != nil { // both were ready: stopping wins
				return
			}
		}
	}
}

func (l *Loop) scheduled(ctx context.Context) {
	t := time.NewTimer(l.o.Next(time.Now()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.o.Run(ctx)
		t.Reset(l.o.Next(time.Now()))
	}
}

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }
