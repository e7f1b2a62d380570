package monitor

import (
	"time"

	"github.com/docshield/voice-worker/internal/queue"
)

// DefaultErrorRateWindow is the operations doc's rolling window.
const DefaultErrorRateWindow = 5 * time.Minute

// ErrorRate is failed / processed task attempts over a rolling window,
// built from deltas of asynq's cumulative per-queue counters (which count
// every attempt, retries included, and are shared by all workers: the rate
// is the cluster's, not this process's). It is confined to one goroutine
// (the evaluator's).
type ErrorRate struct {
	window time.Duration

	primed  bool
	prev    map[string]attemptCounts // by queue, as of the last Observe
	samples []attemptSample          // oldest first, pruned to the window
}

type attemptCounts struct{ processed, failed int64 }

// attemptSample is what happened between the previous Observe and at.
type attemptSample struct {
	at time.Time
	attemptCounts
}

// NewErrorRate keeps window of history.
func NewErrorRate(window time.Duration) *ErrorRate {
	return &ErrorRate{window: window, prev: map[string]attemptCounts{}}
}

// Observe takes one sample of the counters. The first sample is only a
// baseline: counters that predate this process say nothing about the last
// five minutes. A counter that went down was reset (Redis lost its data,
// or the queue was deleted); what it reads now happened since the reset.
// A queue seen for the first time is a baseline too.
func (e *ErrorRate) Observe(at time.Time, stats []queue.QueueStats) {
	cur := make(map[string]attemptCounts, len(stats))
	var d attemptCounts
	for _, s := range stats {
		c := attemptCounts{processed: int64(s.ProcessedTotal), failed: int64(s.FailedTotal)}
		cur[s.Queue] = c
		p, seen := e.prev[s.Queue]
		switch {
		case !e.primed || !seen:
		case c.processed < p.processed || c.failed < p.failed:
			d.processed += c.processed
			d.failed += c.failed
		default:
			d.processed += c.processed - p.processed
			d.failed += c.failed - p.failed
		}
	}
	if e.primed {
		e.samples = append(e.samples, attemptSample{at: at, attemptCounts: d})
	}
	e.prev, e.primed = cur, true
	e.prune(at)
}

// Rate is the percent of attempts that failed in the window ending at, and
// the counts behind it. No attempts reads as 0%: nothing failed.
func (e *ErrorRate) Rate(at time.Time) (pct float64, processed, failed int64) {
	e.prune(at)
	for _, s := range e.samples {
		processed += s.processed
		failed += s.failed
	}
	if processed <= 0 {
		return 0, processed, failed
	}
	return min(100, float64(failed)*100/float64(processed)), processed, failed
}

// prune drops samples that ended before the window.
func (e *ErrorRate) prune(at time.Time) {
	cut := at.Add(-e.window)
	i := 0
	for i < len(e.samples) && !e.samples[i].at.After(cut) {
		i++
	}
	e.samples = e.samples[i:]
}
