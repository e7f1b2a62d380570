package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/version"
	"github.com/docshield/voice-worker/internal/worker"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func cmdRun(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "run", "run\n\nRuns the worker until SIGTERM/SIGINT, then shuts down within SHUTDOWN_TIMEOUT.")
	if code, done := parse(e, fs, args); done {
		return code
	}
	cfg, cfgErr := config.Load(e.lookup)
	var sinks []zapcore.Core
	var outFields []zap.Field
	var shipper *logging.LogTail
	if cfgErr == nil && cfg.LogTail.Enabled() {
		var err error
		shipper, err = logging.NewLogTail(logging.LogTailOptions{
			URL: cfg.LogTail.IngestURL, Token: cfg.LogTail.SourceToken,
			BufferBytes: cfg.LogTail.BufferBytes, Stdout: e.stdout,
		})
		if err != nil {
			return configError(e, err)
		}
		sinks = append(sinks, shipper.Core())
		outFields = append(outFields, logging.ShippedField())
	}
	log, err := logging.New(logging.Options{
		Level: cfg.LogLevel, Out: zapSync(e.stdout), OutFields: outFields, Sinks: sinks, Console: consoleLogs(cfg, e.stdout),
		Fields: []zap.Field{zap.String("service", logging.Service), zap.String("env", string(cfg.Env)),
			zap.String("version", version.Version)},
	})
	if err != nil {
		return configError(e, err)
	}
	// go-redis writes plain text to stderr unless told otherwise: every
	// line of the daemon is one of ours.
	logging.RouteRedis(log)
	defer func() {
		_ = log.Sync() // stdout sync fails on pipes; nothing to do about it
		if shipper != nil {
			// Last: everything else has logged by now. Bounded so the
			// whole shutdown stays inside SHUTDOWN_TIMEOUT.
			ctx, cancel := context.WithTimeout(context.Background(), worker.ShutdownReserve(cfg.Worker.ShutdownTimeout)/2)
			defer cancel()
			_ = shipper.Close(ctx)
		}
	}()
	if cfgErr != nil {
		var errs config.Errors
		errors.As(cfgErr, &errs)
		log.Error("config.invalid", zap.Strings("variables", errs.Vars()), zap.Error(cfgErr))
		fmt.Fprintf(e.stderr, "worker: %v\n", cfgErr)
		return 1
	}
	// Memory levels not set follow the dyno's real limit (standard-2x
	// has twice standard-1x's).
	cfg.Health = cfg.Health.WithMemoryLimit(monitor.DefaultProcFS().MemoryLimit())
	log.Info("worker.config", configFields(cfg)...)
	// Heroku's Go runtime metrics (its dashboard), beside the logs: on
	// Heroku only, where HEROKU_METRICS_URL is set.
	hm := monitor.NewHerokuMetrics(cfg.Health.HerokuMetricsURL, log)
	hm.Start()
	defer hm.Shutdown()
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
			// No Sync: with LogTail down it could wait longer still; the
			// line reaches stdout, which Heroku collects anyway.
			log.Error("worker.shutdown_overrun", zap.Int64("shutdown_timeout_ms", cfg.Worker.ShutdownTimeout.Milliseconds()))
			os.Exit(1)
		}
	}()

	d, err := openDeps(ctx, cfg, log, owner)
	if err != nil {
		return err
	}
	defer d.close(ctx) // after the daemon's parts have stopped
	dm, err := newDaemon(ctx, d)
	if err != nil {
		return err
	}
	if err := dm.start(); err != nil {
		return err
	}
	<-ctx.Done()
	dm.shutdown(time.Now())
	return nil
}

// thresholds maps the configured alert levels onto the health monitor's.
func thresholds(h config.Health) monitor.Thresholds {
	t := monitor.DefaultThresholds()
	t.CPUPercent = monitor.Threshold{Warning: float64(h.CPUWarnPct), Critical: float64(h.CPUCritPct)}
	t.RSSMB = monitor.Threshold{Warning: float64(h.MemWarnMB), Critical: float64(h.MemCritMB)}
	t.QueueLength = monitor.Threshold{Warning: float64(h.QueueWarn), Critical: float64(h.QueueCrit)}
	t.ErrorRatePercent = monitor.Threshold{Warning: float64(h.ErrorRateWarnPct), Critical: float64(h.ErrorRateCritPct)}
	t.RedisMemoryPercent = monitor.Threshold{Warning: float64(h.RedisMemWarnPct), Critical: float64(h.RedisMemCritPct)}
	return t
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
