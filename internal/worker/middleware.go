package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// middleware gives every task a logger carrying its id, type and attempt id,
// logs one line with the outcome and duration, and turns a panic into an
// error with the stack in the log so one bad task never takes the process
// down.
func (s *Server) middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
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
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
				log.Error("task.panic", zap.Any("panic", r), zap.String("stack", string(debug.Stack())))
			}
			fields := []zap.Field{zap.Duration("duration_ms", time.Since(start)), zap.String("outcome", Outcome(err))}
			switch {
			case Deferred(err):
				log.Info("task.deferred", append(fields, zap.Error(err))...)
			case err != nil:
				log.Warn("task.failed", append(fields, zap.Error(err))...)
			default:
				log.Info("task.done", fields...)
			}
		}()
		log.Debug("task.start")
		return next.ProcessTask(ctx, t)
	})
}

// Outcome names what happened to a task in one word, for logs and alerts.
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, asynq.SkipRetry):
		return "rejected"
	case Deferred(err):
		return "deferred"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	default:
		return "error"
	}
}

// Reject marks err as permanent: asynq archives the task with err as the
// reason instead of retrying it.
func Reject(err error) error { return fmt.Errorf("%w (%w)", err, asynq.SkipRetry) }

type asynqLogger struct{ l *zap.SugaredLogger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(args...) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(args...) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(args...) }
func (a asynqLogger) Error(args ...any) { a.l.Error(args...) }

// Fatal is logged at error level: asynq calls it for conditions we prefer to
// surface through Run's error rather than exit the process from a library.
func (a asynqLogger) Fatal(args ...any) { a.l.Error(args...) }
