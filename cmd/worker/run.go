package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/analysis"
	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/docshield/voice-worker/internal/version"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
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
	}
	log, err := logging.New(logging.Options{
		Level: cfg.LogLevel, Out: zapSync(e.stdout), Sinks: sinks,
		Fields: []zap.Field{zap.String("service", "docshield-worker"), zap.String("env", string(cfg.Env)),
			zap.String("version", version.Version)},
	})
	if err != nil {
		return configError(e, err)
	}
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
			log.Error("worker.shutdown_overrun", zap.Duration("shutdown_timeout", cfg.Worker.ShutdownTimeout))
			os.Exit(1)
		}
	}()

	st, err := openStore(ctx, cfg.Mongo)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), worker.ShutdownReserve(cfg.Worker.ShutdownTimeout)/2)
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
	s3c, err := openStorage(ctx, cfg.S3)
	if err != nil {
		return err
	}
	insp := asynq.NewInspector(redisOpt)
	defer insp.Close()
	queues := func(ctx context.Context) ([]queue.QueueStats, error) { return queue.Stats(ctx, insp) }
	redisInfo := func(ctx context.Context) (queue.RedisInfo, error) { return queue.Inspect(ctx, redisOpt) }
	snaps := monitor.NewRedisSnapshots(redisOpt, 3*cfg.Health.EvalInterval)
	defer snaps.Close()
	pressure := monitor.NewPressure(log)
	mon, err := monitor.NewMonitor(monitor.MonitorOptions{
		Logger: log, Worker: owner,
		Checks: []monitor.ScheduledCheck{
			{Check: health.RedisCheck(redisOpt), Interval: cfg.Health.RedisInterval},
			{Check: health.Check{Name: "mongodb", Run: func(ctx context.Context) (string, error) { return health.MongoPing(ctx, st) }},
				Interval: cfg.Health.MongoInterval},
			{Check: health.Check{Name: "s3", Run: func(ctx context.Context) (string, error) { return health.S3Probe(ctx, s3c) }},
				Interval: cfg.Health.S3Interval},
		},
		HeartbeatInterval: cfg.Health.WorkerInterval, EvalInterval: cfg.Health.EvalInterval,
		Thresholds: thresholds(cfg.Health), Queues: queues, Serving: srv.Serves, Redis: redisInfo,
		Pressure: pressure, Publish: snaps.Publish,
	})
	if err != nil {
		return err
	}
	if cfg.Health.MetricsAddr != "" {
		ms, err := monitor.StartMetricsServer(cfg.Health.MetricsAddr, monitor.MetricsHandler(mon, queues), log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			_ = ms.Shutdown(sctx)
		}()
	}
	srv.Handle(tasks.TypeSystemProbe, asynq.HandlerFunc(worker.ProbeHandler))
	// Campaigns: a dispatch round every interval on each worker (one of
	// them wins each round), and campaign:dispatch for a round on demand.
	enq := queue.NewClient(redisOpt)
	defer enq.Close()
	camp := campaign.New(st, enq, campaign.Options{Owner: owner, Logger: log, Interval: cfg.Worker.DispatchInterval})
	srv.Handle(tasks.TypeCampaignDispatch, camp)
	ticker := camp.NewTicker()
	ticker.Start()
	defer ticker.Shutdown() // before MongoDB closes (deferred earlier, runs later)

	// Call ends MongoDB did not take wait in Redis for the reaper.
	endsRedis := redisOpt.MakeRedisClient().(redis.UniversalClient)
	defer endsRedis.Close()
	ends := call.NewRedisEndOutbox(endsRedis)

	// Failed tasks' payloads are bounded in age and size (asynq keeps 90
	// days and 10,000 per queue).
	janitor := queue.NewJanitor(queue.JanitorOptions{
		Inspector: insp, Logger: log, Interval: cfg.Queue.JanitorInterval,
		ArchiveMaxAge: cfg.Queue.ArchiveMaxAge, ArchiveMaxBytes: cfg.Queue.ArchiveMaxBytes,
		InlineArchiveMaxAge: cfg.Queue.InlineArchiveMaxAge,
	})
	janitor.Start()
	defer janitor.Shutdown()

	runner, rooms, closeRunner, err := buildRunner(callDeps{daemon: ctx, cfg: cfg, store: st, storage: s3c, campaign: camp,
		analyze: enq, ends: ends, log: log})
	if err != nil {
		return err
	}
	defer closeRunner()

	// Every call reaches a true end: pending ends written, lost ends
	// repaired, attempts of workers that died settled and hung up.
	reaper := call.NewReaper(call.ReaperOptions{Store: st, Ends: ends, Rooms: rooms, Analyze: enq,
		Interval: min(30*time.Second, cfg.Worker.CallLease/3), Logger: log})
	reaper.Start()
	defer reaper.Shutdown()
	// A worker that cannot place calls does not serve their queue: the
	// tasks wait, pending, for one that can. Backpressure defers new calls
	// while memory is above its warning level.
	if runner == nil {
		srv.Unavailable(tasks.TypeCallOutbound, notSet(cfg.MissingForCalls()))
	} else {
		srv.Handle(tasks.TypeCallOutbound, pressure.Middleware(tasks.TypeCallOutbound)(endOnShutdown(ctx,
			&call.Handler{Calls: st, Queue: enq, Owner: owner, Runner: runner, Lease: cfg.Worker.CallLease})))
	}
	// Post-call analysis needs OpenAI; without a key its queue waits.
	if cfg.OpenAI.Enabled() {
		chat, err := analysis.NewClient(analysis.ClientConfig{APIKey: cfg.OpenAI.APIKey, BaseURL: cfg.OpenAI.BaseURL})
		if err != nil {
			return err
		}
		an, err := analysis.New(st, chat, analysis.Options{Model: cfg.OpenAI.AnalysisModel, Outcomes: camp})
		if err != nil {
			return err
		}
		srv.Handle(tasks.TypeCallAnalyze, an)
	} else {
		srv.Unavailable(tasks.TypeCallAnalyze, notSet(cfg.MissingForAnalysis()))
	}
	// After the registrations: the monitor's first evaluation counts this
	// worker's queues as served.
	mon.Start(ctx)
	defer mon.Shutdown()
	return srv.Run(ctx)
}

// notSet says which settings are missing, for `worker.queues`.
func notSet(vars []string) string { return strings.Join(vars, ", ") + " not set" }

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
