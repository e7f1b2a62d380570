// Package worker runs the asynq server: queues and their priorities,
// per-task logging and panic recovery, the retry policy and graceful
// shutdown inside Heroku's 30 seconds.
package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// Options configure the server.
type Options struct {
	Redis       asynq.RedisConnOpt
	Concurrency int
	// ShutdownTimeout is the whole budget from SIGTERM to exit. asynq gets
	// most of it to let active tasks finish; the rest is kept for closing
	// connections and flushing logs.
	ShutdownTimeout time.Duration
	Logger          *zap.Logger
}

// Server is the asynq server with our middleware and policies.
type Server struct {
	srv *asynq.Server
	mux *asynq.ServeMux
	log *zap.Logger
}

// ShutdownReserve is the part of the shutdown budget kept back from asynq
// for what it does before and after waiting for tasks (its processor loop
// notices the stop only between polls, then requeues, then stops its other
// goroutines) and for what runs after it (closing MongoDB, flushing logs).
func ShutdownReserve(total time.Duration) time.Duration {
	return min(max(total/4, 2*time.Second), 5*time.Second, total/2)
}

// taskCheckInterval is how often an idle worker polls Redis. asynq's
// default (1 s, plus up to 0.5 s jitter) delays the start of a shutdown by
// as much; a quarter of that costs four cheap polls a second.
const taskCheckInterval = 250 * time.Millisecond

// New builds the server. Handlers are added with Handle before Run.
func New(o Options) *Server {
	log := o.Logger
	s := &Server{mux: asynq.NewServeMux(), log: log}
	s.mux.Use(s.middleware)
	s.srv = asynq.NewServer(o.Redis, asynq.Config{
		Concurrency:       o.Concurrency,
		Queues:            tasks.Queues,
		RetryDelayFunc:    RetryDelay,
		IsFailure:         isFailure,
		ErrorHandler:      asynq.ErrorHandlerFunc(s.handleError),
		ShutdownTimeout:   o.ShutdownTimeout - ShutdownReserve(o.ShutdownTimeout),
		TaskCheckInterval: taskCheckInterval,
		Logger:            asynqLogger{log.Named("asynq").Sugar()},
		LogLevel:          asynq.WarnLevel,
		HealthCheckFunc: func(err error) {
			if err != nil {
				log.Error("worker.redis_unhealthy", zap.Error(err))
			}
		},
	})
	return s
}

// Handle registers a handler for a task type.
func (s *Server) Handle(taskType string, h asynq.Handler) { s.mux.Handle(taskType, h) }

// Run processes tasks until ctx is cancelled, then shuts down gracefully:
// no new tasks are taken, active ones get the shutdown budget to finish and
// are otherwise put back in their queue by asynq, never lost.
func (s *Server) Run(ctx context.Context) error {
	if err := s.srv.Start(s.mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	s.log.Info("worker.start")
	<-ctx.Done()
	s.log.Info("worker.stopping")
	s.srv.Shutdown()
	s.log.Info("worker.stop")
	return nil
}

// Stop stops taking new tasks without waiting (Heroku sends SIGTERM; we
// call this as soon as it arrives so nothing new starts during shutdown).
func (s *Server) Stop() { s.srv.Stop() }

// RetryDelay is exponential backoff with full jitter: 10s, 20s, 40s, ...
// capped at 30 minutes. Calls use a longer base: a call that failed for
// infrastructure reasons should not hammer a trunk or the callee.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	base, ceiling := 10*time.Second, 30*time.Minute
	if t.Type() == tasks.TypeCallOutbound {
		base = time.Minute
	}
	var after interface{ RetryAfter() time.Duration }
	if errors.As(err, &after) && after.RetryAfter() > 0 {
		return after.RetryAfter()
	}
	d := base << min(n, 16)
	if d > ceiling || d <= 0 {
		d = ceiling
	}
	// Half fixed, half random: spreads retries after a shared outage
	// without ever retrying sooner than half the backoff.
	return d/2 + rand.N(d/2+1)
}

// isFailure decides what counts towards the failed counters and the error
// rate alert: a shutdown interruption is not a failure of the task, and
// neither is a deferral (backpressure), which must not use up a retry.
func isFailure(err error) bool {
	return !errors.Is(err, context.Canceled) && !Deferred(err)
}

// Deferred reports whether err only postpones the task (it implements
// Deferred() bool, as monitor.ErrBackpressure does).
func Deferred(err error) bool {
	var d interface{ Deferred() bool }
	return errors.As(err, &d) && d.Deferred()
}

func (s *Server) handleError(ctx context.Context, t *asynq.Task, err error) {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	id, _ := asynq.GetTaskID(ctx)
	fields := []zap.Field{
		zap.String("task_id", id), zap.String("task_type", t.Type()),
		zap.String("attempt_id", tasks.AttemptIDOf(t.Payload())),
		zap.Int("retried", retried), zap.Int("max_retry", maxRetry), zap.Error(err),
	}
	if Deferred(err) {
		s.log.Info("task.deferred", fields...)
		return
	}
	if errors.Is(err, asynq.SkipRetry) || retried >= maxRetry {
		s.log.Error("task.archived", fields...)
		return
	}
	s.log.Warn("task.will_retry", fields...)
}
