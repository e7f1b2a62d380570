package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/stretchr/testify/require"
)

// One failure in three tasks is no incident: the error rate is graded
// only on DefaultErrorRateMinTasks attempts or more, and a standing alert
// resolves when the window thins out below them.
func TestErrorRateNeedsAMinimumSample(t *testing.T) {
	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	e.minTasks = DefaultErrorRateMinTasks
	next := seq(
		queueSnapshot(0, 0, 0),
		queueSnapshot(0, 3, 1),  // 33%, of 3 attempts: not graded
		queueSnapshot(0, 30, 4), // 4 of 30 = 13%: critical
		queueSnapshot(0, 30, 4), // nothing new
		queueSnapshot(0, 30, 4), // nothing new
		queueSnapshot(0, 33, 5), // later: 1 of 3 in the window, thin again
	)
	e.queues = func(context.Context) ([]queue.QueueStats, error) { return next(), nil }
	var levels []Severity
	for i := range 6 {
		e.evaluate(context.Background())
		for _, r := range e.latest.Load().Readings {
			if r.Name == MetricErrorRate {
				levels = append(levels, r.Level)
				if i == 1 {
					require.Equal(t, 33.33, round2(r.Value), "the value is shown as it is")
					require.Contains(t, r.Detail, "1 of 3 attempts failed")
					require.Contains(t, r.Detail, "fewer than 20, not graded")
				}
			}
		}
		clock.Advance(2 * time.Minute)
		if i == 3 {
			clock.Advance(5 * time.Minute) // the 30 attempts leave the window
		}
	}
	require.Equal(t, []Severity{SeverityOK, SeverityOK, SeverityCritical, SeverityCritical, SeverityOK, SeverityOK}, levels)
	require.Equal(t, []string{"alert", "resolved"}, messages(logs))
	require.Equal(t, "critical", events(logs, "alert")[0]["severity"])
}

// Cluster-wide metrics are graded by every process but their alerts are
// logged only by the reporter; a process's own CPU and memory alerts are
// logged whoever reports. A process that becomes the reporter knows the
// levels already: an ongoing alert is not repeated, its end is reported.
func TestOnlyTheReporterLogsClusterWideAlerts(t *testing.T) {
	clock := newFakeClock()
	log, logs := observed()
	e := newTestEvaluator(log, clock)
	reporter := false
	e.reporter = func() bool { return reporter }
	e.cpu = cpuSeq(90)
	backlog := seq(150, 150, 250, 10)
	e.queues = func(context.Context) ([]queue.QueueStats, error) {
		return []queue.QueueStats{{Queue: "calls", Servers: 1, Pending: backlog()}}, nil
	}
	e.evaluate(context.Background()) // queue warning: not ours to say; CPU: ours
	require.Equal(t, []string{"alert"}, messages(logs))
	require.Equal(t, "cpu", events(logs, "alert")[0]["metric"])

	reporter = true // elected
	clock.Advance(30 * time.Second)
	e.evaluate(context.Background()) // still warning: already known, not repeated
	require.Len(t, events(logs, "alert"), 1)
	clock.Advance(30 * time.Second)
	e.evaluate(context.Background()) // critical: a new crossing
	clock.Advance(30 * time.Second)
	e.evaluate(context.Background()) // back to ok
	require.Equal(t, []string{"alert", "alert", "resolved"}, messages(logs))
	require.Equal(t, "queue_length", events(logs, "alert")[1]["metric"])
	require.Equal(t, "critical", events(logs, "alert")[1]["severity"])
	require.Equal(t, "queue_length", events(logs, "resolved")[0]["metric"])
}
