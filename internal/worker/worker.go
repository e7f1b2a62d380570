package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/docshield/voice-worker/tasks"
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

// Server is the asynq server with our routing, middleware and policies.
// Register every task type with Handle or Unavailable, then Run.
type Server struct {
	opts   Options       // immutable
	log    *zap.Logger   // immutable
	client *asynq.Client // requeues copies; safe for concurrent use

	mu          sync.Mutex // guards the registrations, written before Start
	handlers    map[string]asynq.Handler
	unavailable map[string]string // task type → why this worker cannot run it

	srv *asynq.Server // set by Start; confined to Start/Shutdown's caller
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
	return &Server{
		opts: o, log: o.Logger, client: asynq.NewClient(o.Redis),
		handlers: map[string]asynq.Handler{}, unavailable: map[string]string{},
	}
}

// Handle registers the handler of a task type.
func (s *Server) Handle(taskType string, h asynq.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[taskType] = h
	delete(s.unavailable, taskType)
}

// Unavailable says this worker cannot run taskType, and why (the missing
// setting): the type's queue is then not served, and its tasks wait for a
// worker that can run them.
func (s *Server) Unavailable(taskType, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.handlers, taskType)
	s.unavailable[taskType] = reason
}

// Serves lists the queues this worker serves, highest priority first: those
// whose every task type has a handler.
func (s *Server) Serves() []string {
	served, _ := s.plan()
	return served
}

// plan splits the queues into served ones and, for the others, why not.
func (s *Server) plan() (served []string, waiting map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	waiting = map[string]string{}
	for _, q := range tasks.QueueNames {
		var why []string
		for _, typ := range tasks.TypesOn(q) {
			if _, ok := s.handlers[typ]; ok {
				continue
			}
			reason, ok := s.unavailable[typ]
			if !ok {
				reason = "no handler registered"
			}
			why = append(why, typ+": "+reason)
		}
		if len(why) == 0 {
			served = append(served, q)
		} else {
			waiting[q] = strings.Join(why, "; ")
		}
	}
	return served, waiting
}

// Run starts the server (Start), waits for ctx, and shuts it down.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	s.Shutdown()
	return nil
}

// Start begins processing the queues this worker can serve, every task
// type registered (Handle or Unavailable) by now.
func (s *Server) Start() error {
	served, waiting := s.plan()
	if len(served) == 0 {
		s.client.Close()
		return errors.New("worker: no queue can be served: every task type lacks a handler")
	}
	s.logPlan(served, waiting)
	weights := make(map[string]int, len(served))
	for _, q := range served {
		weights[q] = tasks.Queues[q]
	}
	s.srv = asynq.NewServer(s.opts.Redis, asynq.Config{
		Concurrency:       s.opts.Concurrency,
		Queues:            weights,
		RetryDelayFunc:    RetryDelay,
		IsFailure:         isFailure,
		ErrorHandler:      asynq.ErrorHandlerFunc(s.handleError),
		ShutdownTimeout:   s.opts.ShutdownTimeout - ShutdownReserve(s.opts.ShutdownTimeout),
		TaskCheckInterval: taskCheckInterval,
		Logger:            newAsynqLogger(s.log),
		LogLevel:          asynq.WarnLevel,
		HealthCheckFunc: func(err error) {
			if err != nil {
				s.log.Error("worker.redis_unhealthy", zap.Error(err))
			}
		},
	})
	if err := s.srv.Start(asynq.HandlerFunc(s.processTask)); err != nil {
		s.client.Close()
		return fmt.Errorf("start asynq server: %w", err)
	}
	s.log.Info("worker.start")
	return nil
}

// Shutdown stops taking tasks and gives the active ones most of the
// shutdown budget to finish (asynq puts back the rest: none is lost),
// then returns.
func (s *Server) Shutdown() {
	if s.srv == nil {
		return
	}
	s.log.Info("worker.stopping")
	s.srv.Shutdown()
	s.client.Close()
	s.log.Info("worker.stop")
}

// logPlan says once which queues this worker serves and, for the others,
// which setting is missing: their tasks wait, pending, for another worker.
func (s *Server) logPlan(served []string, waiting map[string]string) {
	fields := []zap.Field{zap.Strings("serves", served)}
	if len(waiting) == 0 {
		s.log.Info("worker.queues", fields...)
		return
	}
	var notServed, why []string
	for _, q := range tasks.QueueNames {
		if r, ok := waiting[q]; ok {
			notServed = append(notServed, q)
			why = append(why, q+" ("+r+")")
		}
	}
	s.log.Warn("worker.queues", append(fields, zap.Strings("not_served", notServed),
		zap.String("reason", "tasks on these queues wait for a worker that can run them: "+strings.Join(why, "; ")))...)
}

// RetryDelay is exponential backoff with full jitter: 10s, 20s, 40s, ...
// capped at 30 minutes. Calls use a longer base: a call that failed for
// infrastructure reasons should not hammer a trunk or the callee. n counts
// the failures of the copies a task descends from too, so a requeued task
// continues its backoff rather than starting over.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	base, ceiling := 10*time.Second, 30*time.Minute
	if t.Type() == tasks.TypeCallOutbound {
		base = time.Minute
	}
	var after interface{ RetryAfter() time.Duration }
	if errors.As(err, &after) && after.RetryAfter() > 0 {
		return after.RetryAfter()
	}
	n = max(n+priorFailures(t), 0)
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

// handleError logs what happens next to a failed task. It runs before
// asynq acts, and mirrors its rule: archived with SkipRetry or once retried
// reaches MaxRetry (which the policy only lets happen when a requeue could
// not be written), otherwise retried.
func (s *Server) handleError(ctx context.Context, t *asynq.Task, err error) {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	id, _ := asynq.GetTaskID(ctx)
	fields := []zap.Field{
		zap.String("task_id", id), zap.String("task_type", t.Type()),
		zap.String("attempt_id", tasks.AttemptIDOf(t.Payload())),
		zap.Int("retried", retried), zap.Int("max_retry", maxRetry), zap.Error(err),
	}
	var rq *Requeued
	switch {
	case errors.As(err, &rq):
		fields = append(fields, zap.String("new_task_id", rq.ID), zap.String("new_queue", rq.Queue))
		switch {
		case rq.Rerouted:
			s.log.Info("task.rerouted", fields...)
		case Deferred(err):
			s.log.Debug("task.requeued", fields...)
		default:
			s.log.Info("task.requeued", fields...)
		}
	case Deferred(err) && retried < maxRetry:
		// Counted by the pressure, logged by the middleware at debug.
	case errors.Is(err, asynq.SkipRetry) || retried >= maxRetry:
		s.log.Error("task.archived", fields...)
	default:
		s.log.Warn("task.will_retry", fields...)
	}
}
