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
//
// Invariants, and why:
//
//   - New calls are refused (deferred, no retry spent) while any reason
//     holds: memory at its warning level (the evaluator), this process's
//     CPU at its warning level, or, while it has live calls, those calls
//     missing their audio deadlines or its threads waiting in the run
//     queue as long as they run (Admission). A dyno shares its CPU with
//     neighbours: a worker using a third of a core can still starve, and
//     then only the run queue and the deadlines say so. Starvation never
//     refuses a dyno without a live call: there is no call to protect, and
//     a fleet on busy hosts must still take calls. Calls already running
//     are never touched.
//   - Audio health is read from the calls themselves (AudioMeter: each
//     call tracks its model session's input chunks and drops) and from a
//     pacing probe keeping the agent player's 20 ms schedule on its own
//     goroutine: what delays it delays every call's voice.
//   - A reason goes on at the first bad look and off only after good looks
//     in a row (and, for CPU, clearly under the level): a worker does not
//     flap between taking calls and refusing them.
//   - Cluster-wide metrics (queues, error rate, Redis memory) read the same
//     from every worker, so only the elected reporter (package elect) logs
//     their alerts; every worker still grades them, so a new reporter
//     knows the levels and does not repeat an alert in progress. Each
//     worker's own CPU and memory alerts are its own.
//   - The error rate is graded only on DefaultErrorRateMinTasks attempts in
//     its window: one failure in three tasks is no incident.
package monitor
