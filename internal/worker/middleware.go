package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/metrics"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// ErrUnknownTaskType archives a task whose type no version of this worker
// knows: retrying it could never succeed.
var ErrUnknownTaskType = errors.New("unknown task type")

// processTask is every task's way in: a logger carrying its id, type,
// attempt id and queue; the routing and payload checks; the handler, with
// a panic turned into an error (stack in the log) so one bad task never
// takes the process down; then the retry policy; and one line with the
// outcome and duration, which the task metrics count too.
func (s *Server) processTask(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	log := s.log.With(
		zap.String("task_id", id), zap.String("task_type", t.Type()),
		zap.String("attempt_id", tasks.AttemptIDOf(t.Payload())),
		zap.String("queue", queue), zap.Int("retried", retried),
	)
	ctx = logging.WithContext(ctx, log)
	start := time.Now()
	log.Debug("task.start")
	err := s.dispatch(ctx, t, queue)
	err = s.policy(ctx, t, err)

	took, outcome := time.Since(start), Outcome(err)
	_, known := tasks.QueueOf(t.Type())
	metrics.TaskDone(t.Type(), known, queue, outcome, took)
	fields := []zap.Field{zap.Duration("duration_ms", took), zap.String("outcome", outcome)}
	switch {
	case Deferred(err):
		// Per task and per retry, a backlog under backpressure would log
		// hundreds of lines a minute: the pressure reports counts instead.
		log.Debug("task.deferred", append(fields, zap.Error(err))...)
	case err != nil && !errors.Is(err, asynq.RevokeTask):
		log.Warn("task.failed", append(fields, zap.Error(err))...)
	default:
		log.Info("task.done", fields...)
	}
	return err
}

// dispatch checks what a producer could have got wrong, then runs the
// type's handler on the type's own queue.
func (s *Server) dispatch(ctx context.Context, t *asynq.Task, queue string) error {
	home, known := tasks.QueueOf(t.Type())
	if !known {
		return Reject(fmt.Errorf("%w %q: this worker handles %s", ErrUnknownTaskType, truncate(t.Type(), 64), strings.Join(tasks.Types, ", ")))
	}
	if err := errors.Join(tasks.CheckPayloadSize(t.Payload()), tasks.CheckStrictJSON(t.Payload())); err != nil {
		return Reject(fmt.Errorf("%w: %w", tasks.ErrInvalidPayload, err))
	}
	if queue != home {
		return s.requeue(ctx, t, requeue{queue: home, rerouted: true,
			cause: fmt.Errorf("%s belongs on queue %s, found on %s", t.Type(), home, queue)})
	}
	s.mu.Lock()
	h, ok := s.handlers[t.Type()]
	why, unavailable := s.unavailable[t.Type()]
	s.mu.Unlock()
	if !ok {
		// Not reachable: a served queue has a handler for each of its
		// types. Retried rather than archived, so nothing is lost; the
		// error names what this worker lacks.
		if !unavailable {
			why = "no handler registered"
		}
		return fmt.Errorf("%s cannot run on this worker (%s); retried for a worker that can", t.Type(), why)
	}
	return runHandler(ctx, t, h)
}

// runHandler runs h, turning a panic into an error.
func runHandler(ctx context.Context, t *asynq.Task, h asynq.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
			logging.FromContext(ctx).Error("task.panic", zap.Any("panic", r), zap.String("stack", string(debug.Stack())))
		}
	}()
	return h.ProcessTask(ctx, t)
}

// Outcome names what happened to a task in one word, for logs and alerts.
func Outcome(err error) string {
	var rq *Requeued
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &rq) && rq.Rerouted:
		return "rerouted"
	case Deferred(err):
		return "deferred"
	case errors.As(err, &rq):
		return "requeued"
	case errors.Is(err, asynq.SkipRetry):
		return "rejected"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	default:
		return "error"
	}
}

// Reject marks err as permanent: asynq archives the task with err as the
// reason instead of retrying it.
func Reject(err error) error { return fmt.Errorf("%w (%w)", err, asynq.SkipRetry) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
