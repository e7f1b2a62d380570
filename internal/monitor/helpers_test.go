package monitor

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// observed returns a logger that records everything, and the record.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	return observedAt(zapcore.DebugLevel)
}

// observedAt records entries at level and above.
func observedAt(level zapcore.Level) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(level)
	return zap.New(core), logs
}

// events lists the context fields of every entry named msg, in order.
func events(logs *observer.ObservedLogs, msg string) []map[string]any {
	var out []map[string]any
	for _, e := range logs.FilterMessage(msg).All() {
		out = append(out, e.ContextMap())
	}
	return out
}

// levels lists the level of every entry named msg, in order.
func levels(logs *observer.ObservedLogs, msg string) []zapcore.Level {
	var out []zapcore.Level
	for _, e := range logs.FilterMessage(msg).All() {
		out = append(out, e.Level)
	}
	return out
}

// messages lists every entry's message, in order.
func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Message)
	}
	return out
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// manualTicker's channel is unbuffered: a tick is delivered only when the
// duty is idle in its select, so sending tick n+1 (or shutting down and
// waiting) proves run n has finished. No sleeps needed.
type manualTicker struct {
	c        chan time.Time
	interval time.Duration

	mu      sync.Mutex
	stopped bool
}

func (m *manualTicker) C() <-chan time.Time { return m.c }

func (m *manualTicker) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
}

func (m *manualTicker) isStopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// manualTickers hands out one manualTicker per duty.
type manualTickers struct {
	mu     sync.Mutex
	byDuty map[string]*manualTicker
}

func newManualTickers() *manualTickers { return &manualTickers{byDuty: map[string]*manualTicker{}} }

func (ts *manualTickers) New(duty string, d time.Duration) Ticker {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := &manualTicker{c: make(chan time.Time), interval: d}
	ts.byDuty[duty] = t
	return t
}

func (ts *manualTickers) get(t *testing.T, duty string) *manualTicker {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	mt, ok := ts.byDuty[duty]
	if !ok {
		t.Fatalf("no ticker for duty %q", duty)
	}
	return mt
}

// tick delivers one tick to duty, failing the test if the duty does not
// take it within a generous bound (a stuck duty, not a slow machine).
func (ts *manualTickers) tick(t *testing.T, duty string) {
	t.Helper()
	select {
	case ts.get(t, duty).c <- time.Time{}:
	case <-time.After(10 * time.Second):
		t.Fatalf("duty %q did not take a tick within 10s", duty)
	}
}

// observedLogs reads a record by message.
type observedLogs struct{ logs *observer.ObservedLogs }

func (o *observedLogs) messages() []string                 { return messages(o.logs) }
func (o *observedLogs) events(msg string) []map[string]any { return events(o.logs, msg) }
