// Package monitor watches a running worker: the periodic dependency checks
// (health.Check on a schedule), the heartbeat, the metric readings (CPU,
// memory, queue length, error rate, Redis memory against its maxmemory,
// tasks waiting on queues no running worker serves) graded against their
// thresholds with one alert per crossing, backpressure on new calls (logged
// once per change of state, with counts, never per task), the snapshots
// workers publish to Redis for `worker health`, and the Prometheus endpoint.
//
// Each duty is one goroutine started and stopped by the Monitor, as asynq
// runs its heartbeater and janitor. Log events keep their historical names
// (`health.check`, `health.failed`, `alert`, `backpressure.on`): operators'
// LogTail queries match on them.
package monitor
