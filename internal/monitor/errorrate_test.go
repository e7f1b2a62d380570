package monitor

import (
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/stretchr/testify/require"
)

// counters builds stats from (queue, processed total, failed total) triples.
func counters(triples ...any) []queue.QueueStats {
	var out []queue.QueueStats
	for i := 0; i+2 < len(triples); i += 3 {
		out = append(out, queue.QueueStats{Queue: triples[i].(string), ProcessedTotal: triples[i+1].(int), FailedTotal: triples[i+2].(int)})
	}
	return out
}

func TestErrorRateWindow(t *testing.T) {
	clock := newFakeClock()
	e := NewErrorRate(5 * time.Minute)
	step := func(stats []queue.QueueStats) (float64, int64, int64) {
		clock.Advance(30 * time.Second)
		e.Observe(clock.Now(), stats)
		return e.Rate(clock.Now())
	}

	// First sample: the counters' history before this process is ignored.
	pct, processed, failed := step(counters("calls", 1000, 900, "default", 50, 0))
	require.Equal(t, [3]any{0.0, int64(0), int64(0)}, [3]any{pct, processed, failed})

	// 100 attempts across two queues, 5 failed: 5%.
	pct, processed, failed = step(counters("calls", 1060, 903, "default", 90, 2))
	require.InDelta(t, 5.0, pct, 1e-9)
	require.Equal(t, int64(100), processed)
	require.Equal(t, int64(5), failed)

	// Another 100 with 15 failed: 20 of 200 over the window, 10%.
	pct, _, _ = step(counters("calls", 1160, 918, "default", 90, 2))
	require.InDelta(t, 10.0, pct, 1e-9)

	// Quiet for five minutes: both busy samples leave the window.
	for range 9 {
		step(counters("calls", 1160, 918, "default", 90, 2))
	}
	pct, processed, _ = step(counters("calls", 1160, 918, "default", 90, 2))
	require.Equal(t, 0.0, pct)
	require.Equal(t, int64(0), processed)
}

func TestErrorRateSampleLeavesTheWindowAfterFiveMinutes(t *testing.T) {
	start := newFakeClock().Now()
	e := NewErrorRate(5 * time.Minute)
	e.Observe(start, counters("calls", 0, 0))
	e.Observe(start.Add(time.Minute), counters("calls", 10, 1))
	pct, _, _ := e.Rate(start.Add(time.Minute + 5*time.Minute - time.Second))
	require.InDelta(t, 10.0, pct, 1e-9, "still inside")
	pct, processed, _ := e.Rate(start.Add(time.Minute + 5*time.Minute))
	require.Equal(t, 0.0, pct, "exactly five minutes old is out")
	require.Equal(t, int64(0), processed)
}

func TestErrorRateCounterReset(t *testing.T) {
	clock := newFakeClock()
	e := NewErrorRate(5 * time.Minute)
	e.Observe(clock.Now(), counters("calls", 5000, 100, "default", 300, 3))
	clock.Advance(30 * time.Second)
	// Redis lost its data: "calls" restarted and has seen 20 attempts, 4
	// failed, since. "default" kept counting (10 more, none failed).
	e.Observe(clock.Now(), counters("calls", 20, 4, "default", 310, 3))
	pct, processed, failed := e.Rate(clock.Now())
	require.Equal(t, int64(30), processed)
	require.Equal(t, int64(4), failed)
	require.InDelta(t, 4.0*100/30, pct, 1e-9)
	require.GreaterOrEqual(t, pct, 0.0, "a reset never reads as a negative rate")
}

func TestErrorRateNewQueueIsABaseline(t *testing.T) {
	clock := newFakeClock()
	e := NewErrorRate(5 * time.Minute)
	e.Observe(clock.Now(), counters("calls", 10, 0))
	clock.Advance(30 * time.Second)
	e.Observe(clock.Now(), counters("calls", 20, 0, "low", 700, 700))
	pct, processed, _ := e.Rate(clock.Now())
	require.Equal(t, 0.0, pct)
	require.Equal(t, int64(10), processed)
}

func TestErrorRateNeverAbove100(t *testing.T) {
	clock := newFakeClock()
	e := NewErrorRate(5 * time.Minute)
	e.Observe(clock.Now(), counters("calls", 0, 0))
	clock.Advance(30 * time.Second)
	e.Observe(clock.Now(), counters("calls", 1, 3)) // inconsistent counters read mid-update
	pct, _, _ := e.Rate(clock.Now())
	require.Equal(t, 100.0, pct)
}
