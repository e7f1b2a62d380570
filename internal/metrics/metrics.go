// Package metrics holds the worker's own Prometheus series that are counted
// where things end rather than read at scrape time: every task (by type,
// queue and outcome, with its duration) and every call (by status and
// outcome). internal/worker counts tasks, the call flow counts calls, and
// monitor.MetricsHandler serves them beside the process, Go runtime and
// queue series.
//
// The collectors are the process's, as Prometheus's are by design: one
// process runs one worker. Label values are bounded: task types the worker
// does not know are counted as "unknown", and queues and call statuses
// are the worker's own small sets.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Task outcomes that count as failures (worker.Outcome's words): the task
// did not do its work and will be retried (requeued: as a copy) or given up
// (rejected). A deferral, an interruption by shutdown and a reroute are
// not failures.
var failedOutcomes = map[string]bool{"error": true, "rejected": true, "requeued": true}

var (
	tasksProcessed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "docshield", Name: "tasks_processed_total",
		Help: "Tasks run by this worker, by type, queue and outcome (ok, error, rejected, requeued, rerouted, deferred, interrupted).",
	}, []string{"task_type", "queue", "outcome"})
	tasksFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "docshield", Name: "tasks_failed_total",
		Help: "Tasks that failed (outcome error, rejected or requeued), by type and queue.",
	}, []string{"task_type", "queue"})
	taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "docshield", Name: "task_duration_seconds",
		Help: "How long a task ran, by type and outcome; a call task lasts the call.",
		// From a dispatch round (milliseconds) to the longest call (30 min).
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800},
	}, []string{"task_type", "outcome"})
	callsEnded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "docshield", Name: "calls_ended_total",
		Help: "Calls that reached their terminal status, by status and outcome (as call.ended logs them).",
	}, []string{"status", "outcome"})
)

// TaskDone counts one task's run: outcome is worker.Outcome's word. A
// taskType outside known is counted as "unknown", so a producer's typos do
// not grow the series without bound.
func TaskDone(taskType string, known bool, queue, outcome string, d time.Duration) {
	if !known {
		taskType = "unknown"
	}
	tasksProcessed.WithLabelValues(taskType, queue, outcome).Inc()
	if failedOutcomes[outcome] {
		tasksFailed.WithLabelValues(taskType, queue).Inc()
	}
	taskDuration.WithLabelValues(taskType, outcome).Observe(d.Seconds())
}

// CallEnded counts a call that reached its terminal status, where the call
// flow logs `call.ended`; outcome may be "" (none recorded).
func CallEnded(status, outcome string) {
	if outcome == "" {
		outcome = "none"
	}
	callsEnded.WithLabelValues(status, outcome).Inc()
}

// Collectors are the series above, for a registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{tasksProcessed, tasksFailed, taskDuration, callsEnded}
}
