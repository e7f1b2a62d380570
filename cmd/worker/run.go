package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/docshield/voice-worker/internal/version"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

func cmdRun(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "run", "run\n\nRuns the worker until SIGTERM/SIGINT, then shuts down within SHUTDOWN_TIMEOUT.")
	if code, done := parse(e, fs, args); done {
		return code
	}
	cfg, cfgErr := config.Load(e.lookup)
	log, err := logging.New(logging.Options{
		Level: cfg.LogLevel, Out: zapSync(e.stdout),
		Fields: []zap.Field{zap.String("service", "docshield-worker"), zap.String("env", string(cfg.Env)),
			zap.String("version", version.Version)},
	})
	if err != nil {
		return configError(e, err)
	}
	defer log.Sync() //nolint:errcheck // stdout sync fails on pipes; nothing to do about it
	if cfgErr != nil {
		var errs config.Errors
		errors.As(cfgErr, &errs)
		log.Error("config.invalid", zap.Strings("variables", errs.Vars()), zap.Error(cfgErr))
		fmt.Fprintf(e.stderr, "worker: %v\n", cfgErr)
		return 1
	}
	if err := runDaemon(ctx, cfg, log); err != nil {
		log.Error("worker.exit", zap.Error(err))
		return 1
	}
	return 0
}

// runDaemon wires the parts and runs until ctx is cancelled.
func runDaemon(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	owner := ownerName(cfg.Worker.Name)
	log = log.With(zap.String("worker", owner))

	// Everything after the signal must fit in SHUTDOWN_TIMEOUT; past it,
	// exit rather than be SIGKILLed mid-write by Heroku.
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-stopped:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(cfg.Worker.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-stopped:
		case <-t.C:
			log.Error("worker.shutdown_overrun", zap.Duration("shutdown_timeout", cfg.Worker.ShutdownTimeout))
			_ = log.Sync()
			os.Exit(1)
		}
	}()

	st, err := openStore(ctx, cfg.Mongo)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), worker.ShutdownReserve(cfg.Worker.ShutdownTimeout))
		defer cancel()
		if err := st.Close(closeCtx); err != nil {
			log.Warn("mongo.close", zap.Error(err))
		}
	}()
	idxCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = st.EnsureIndexes(idxCtx)
	cancel()
	if err != nil {
		// Without indexes the claim's uniqueness is not guaranteed: refuse
		// to take calls, and let the dyno manager restart us.
		return fmt.Errorf("mongodb indexes: %w", err)
	}

	redisOpt, err := queue.ConnOpt(cfg.Redis)
	if err != nil {
		return err
	}
	log.Info("worker.config",
		zap.String("redis", logging.RedactURL(cfg.Redis.URL)), zap.String("redis_source", cfg.Redis.Source),
		zap.String("mongodb_database", cfg.Mongo.Database), zap.String("s3_bucket", cfg.S3.Bucket),
		zap.Int("concurrency", cfg.Worker.Concurrency), zap.Duration("shutdown_timeout", cfg.Worker.ShutdownTimeout))

	srv := worker.New(worker.Options{
		Redis: redisOpt, Concurrency: cfg.Worker.Concurrency,
		ShutdownTimeout: cfg.Worker.ShutdownTimeout, Logger: log,
	})
	srv.Handle(tasks.TypeSystemProbe, asynq.HandlerFunc(worker.ProbeHandler))
	srv.Handle(tasks.TypeCallOutbound, &call.Handler{Calls: st, Owner: owner})
	srv.Handle(tasks.TypeCampaignDispatch, notYet[tasks.CampaignDispatch]())
	srv.Handle(tasks.TypeCallAnalyze, notYet[tasks.CallAnalyze]())
	return srv.Run(ctx)
}

// notYet validates a payload (so a bad one is archived with its reason at
// once) and otherwise leaves the task to be retried later: this build has no
// handler for it yet, and a valid task must not be lost.
func notYet[T any, P interface {
	*T
	tasks.Payload
}]() asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p T
		if err := tasks.Unmarshal(t.Payload(), P(&p)); err != nil {
			return worker.Reject(err)
		}
		return fmt.Errorf("%s is not handled by worker %s yet; will retry", t.Type(), version.Version)
	})
}

// ownerName identifies this process in claimed attempts: the dyno name on
// Heroku, else host and pid.
func ownerName(configured string) string {
	if configured != "" {
		return fmt.Sprintf("%s/%d", configured, os.Getpid())
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}
