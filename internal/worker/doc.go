// Package worker runs the asynq server: which queues this process serves,
// per-task logging and panic recovery, the retry policy, and graceful
// shutdown inside Heroku's 30 seconds.
//
// Invariants, and why:
//
//   - A worker serves only the queues whose every task type it can handle
//     (tasks.TypesOn). asynq serves queues, not task types: a worker that
//     took a task it cannot run would fail it, spend its retries and
//     archive it. The tasks of an unserved queue stay pending, untouched
//     (retried 0), until a worker that can run them starts. Which queues a
//     process serves, and why not the others, is logged once at start
//     (`worker.queues`).
//   - A task runs only on its type's queue. One found elsewhere (a producer
//     using an old queue name, e.g. call:analyze on default) is moved, with
//     its id, to its own queue rather than run where a worker may lack
//     what it needs.
//   - A producer's mistake is caught, never absorbed: an unknown task type,
//     a payload over tasks.MaxPayloadBytes or JSON with a key given twice is
//     archived at once with the reason.
//   - The retry budget of a task is its type's (tasks.MaxRetry), whatever
//     MaxRetry the producer set. asynq archives a task once its retried
//     count reaches the MaxRetry it was enqueued with, from its in-memory
//     copy, so nothing a handler does can give it more attempts: when the
//     producer's MaxRetry is below the budget, or a deferral (backpressure,
//     an analysis that must wait) comes on what asynq counts as the last
//     attempt, the task is requeued as a copy carrying the failures so far
//     and the rest of the budget, and the original is dropped. A copy's id
//     is the original's plus "~<generation>" (a rerouted task keeps its id,
//     on another queue); the failures so far travel in its headers, so the
//     budget holds across copies and the backoff continues where it was.
//   - A deferral is not a failure: it spends no retry, counts towards no
//     error rate, and is logged at debug level only (the pressure's own
//     state changes are the operator's signal).
package worker
