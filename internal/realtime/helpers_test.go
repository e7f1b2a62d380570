package realtime_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
)

// wait bounds every wait in these tests. It is generous because a busy
// 2-core machine can be slow; nothing here measures time.
const wait = 15 * time.Second

func startSim(t *testing.T, script realtimesim.Script, opts ...realtimesim.Option) (*realtimesim.Server, string) {
	t.Helper()
	srv := realtimesim.New(script, opts...)
	base, err := srv.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	return srv, base
}

func testConfig(base string) realtime.Config {
	return realtime.Config{
		BaseURL:      base,
		APIKey:       realtimesim.DefaultAPIKey,
		Instructions: "You are calling a doctor's office on behalf of DocShield.",
		Logger:       zap.NewNop(),
	}
}

func dial(t *testing.T, cfg realtime.Config) *realtime.Session {
	t.Helper()
	s, err := realtime.Dial(context.Background(), withDialTimeout(cfg))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func withDialTimeout(cfg realtime.Config) realtime.Config {
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = wait
	}
	return cfg
}

// next reads events until one of type T arrives and returns it, with every
// event read on the way (T included, last).
func next[T realtime.Event](t *testing.T, s *realtime.Session) (T, []realtime.Event) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var seen []realtime.Event
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				var zero T
				t.Fatalf("events closed while waiting for %T (saw %s): %v", zero, types(seen), s.Err())
			}
			seen = append(seen, ev)
			if e, ok := ev.(T); ok {
				return e, seen
			}
		case <-timer.C:
			var zero T
			t.Fatalf("no %T within %s (saw %s)", zero, wait, types(seen))
		}
	}
}

// drain reads events until the channel closes and returns them.
func drain(t *testing.T, s *realtime.Session) []realtime.Event {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var seen []realtime.Event
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return seen
			}
			seen = append(seen, ev)
		case <-timer.C:
			t.Fatalf("events not closed within %s (saw %s)", wait, types(seen))
		}
	}
}

func types(evs []realtime.Event) string {
	var b strings.Builder
	for i, e := range evs {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(e.EventType())
	}
	return b.String()
}

func errorEvents(evs []realtime.Event) []realtime.ErrorEvent {
	var out []realtime.ErrorEvent
	for _, e := range evs {
		if ee, ok := e.(realtime.ErrorEvent); ok {
			out = append(out, ee)
		}
	}
	return out
}

// sendPCM feeds audio in 20 ms chunks, as the media path does.
func sendPCM(t *testing.T, s *realtime.Session, pcm []int16) {
	t.Helper()
	const chunk = realtime.SampleRate / 50
	for i := 0; i < len(pcm); i += chunk {
		require.NoError(t, s.SendAudio(pcm[i:min(i+chunk, len(pcm))]))
	}
}

// calleeSays is a tone burst between silences: what an energy VAD hears as
// one short utterance.
func calleeSays(leadMS, toneMS, tailMS int) []int16 {
	return realtimesim.Concat(realtimesim.Silence(leadMS), realtimesim.Tone(toneMS, 440, 8000), realtimesim.Silence(tailMS))
}

func waitLog(t *testing.T, srv *realtimesim.Server, cond func(realtimesim.Log) bool) realtimesim.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	l, err := srv.WaitFor(ctx, cond)
	require.NoError(t, err, "simulator log never matched; last: %+v", l)
	return l
}

// requireNoGoroutines fails if goroutines running code whose stack mentions
// any of the markers are still alive after a bounded wait. Goroutines end
// asynchronously after their owner is told to stop, hence the polling.
func requireNoGoroutines(t *testing.T, markers ...string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		left := goroutinesWith(markers)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutine(s) left behind:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		<-tick.C
	}
}

const (
	sessionGoroutines = "realtime.(*Session)"
	simGoroutines     = "realtimesim."
)

func goroutinesWith(markers []string) []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "requireNoGoroutines") {
			continue
		}
		for _, m := range markers {
			if strings.Contains(g, m) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}
