package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/analysis"
	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/campaign"
	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// The daemon is wired here, in three steps that read top-down:
//
//  1. openDeps opens the connections (MongoDB with its indexes, Redis,
//     S3); deps.close closes them, after everything that uses them.
//  2. newDaemon builds every part and registers every task handler
//     (registerHandlers), starting nothing.
//  3. start and shutdown start and stop the parts, each in the order
//     written there. The log shipper, opened before all this, closes
//     after it (cmdRun).

// deps are the daemon's connections.
type deps struct {
	cfg   config.Config
	log   *zap.Logger
	owner string // this process, in claimed attempts and snapshots

	store *store.Store
	redis asynq.RedisClientOpt
	rdb   redis.UniversalClient // the end outbox's and the snapshots' client
	s3    *bucket.Client
	insp  *asynq.Inspector
	enq   *queue.Client
}

// openDeps opens every connection the daemon uses. MongoDB's indexes are
// created before anything else: without them the claim's uniqueness is
// not guaranteed, so the worker refuses to start (the dyno manager
// restarts it).
func openDeps(ctx context.Context, cfg config.Config, log *zap.Logger, owner string) (d *deps, err error) {
	d = &deps{cfg: cfg, log: log, owner: owner}
	defer func() {
		if err != nil {
			d.close(ctx)
		}
	}()
	if d.store, err = openStore(ctx, cfg.Mongo); err != nil {
		return d, err
	}
	idxCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = d.store.EnsureIndexes(idxCtx)
	cancel()
	if err != nil {
		return d, fmt.Errorf("mongodb indexes: %w", err)
	}
	if d.redis, err = queue.ConnOpt(cfg.Redis); err != nil {
		return d, err
	}
	if d.s3, err = openStorage(ctx, cfg.S3); err != nil {
		return d, err
	}
	d.rdb = d.redis.MakeRedisClient().(redis.UniversalClient)
	d.insp = asynq.NewInspector(d.redis)
	d.enq = queue.NewClient(d.redis)
	log.Info("worker.config",
		zap.String("redis", logging.RedactURL(cfg.Redis.URL)), zap.String("redis_source", cfg.Redis.Source),
		zap.String("mongodb_database", cfg.Mongo.Database), zap.String("s3_bucket", cfg.S3.Bucket),
		zap.Int("concurrency", cfg.Worker.Concurrency), zap.Duration("shutdown_timeout", cfg.Worker.ShutdownTimeout))
	return d, nil
}

// close closes what openDeps opened, MongoDB within half the shutdown
// reserve (the other half is the log shipper's).
func (d *deps) close(ctx context.Context) {
	if d.enq != nil {
		_ = d.enq.Close()
	}
	if d.insp != nil {
		_ = d.insp.Close()
	}
	if d.rdb != nil {
		_ = d.rdb.Close()
	}
	if d.store != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), worker.ShutdownReserve(d.cfg.Worker.ShutdownTimeout)/2)
		defer cancel()
		if err := d.store.Close(cctx); err != nil {
			d.log.Warn("mongo.close", zap.Error(err))
		}
	}
}

// daemon is the worker's parts.
type daemon struct {
	d *deps

	srv      *worker.Server
	mon      *monitor.Monitor
	metrics  *monitor.MetricsServer // started by start; nil without METRICS_ADDR
	snaps    *monitor.RedisSnapshots
	camp     *campaign.Service
	ticker   *campaign.Ticker
	janitor  *queue.Janitor
	reaper   *call.Reaper
	calls    callParts
	pressure *monitor.Pressure
	fleet    fleetParts
}

// newDaemon builds every part and registers every handler. daemonCtx ends
// at SIGTERM: live calls hear it at once (endOnShutdown), and the
// recording spool's budget counts from it.
func newDaemon(daemonCtx context.Context, d *deps) (_ *daemon, err error) {
	cfg, log := d.cfg, d.log
	dm := &daemon{d: d, pressure: monitor.NewPressure(log)}
	dm.srv = worker.New(worker.Options{
		Redis: d.redis, Concurrency: cfg.Worker.Concurrency, ShutdownTimeout: cfg.Worker.ShutdownTimeout, Logger: log,
	})
	// Campaigns: a dispatch round every interval on each worker (one of
	// them wins each round), and campaign:dispatch for a round on demand.
	dm.camp = campaign.New(d.store, d.enq, campaign.Options{Owner: d.owner, Logger: log, Interval: cfg.Worker.DispatchInterval})
	dm.ticker = dm.camp.NewTicker()
	// Failed tasks' payloads are bounded in age and size (asynq keeps 90
	// days and 10,000 per queue).
	dm.janitor = queue.NewJanitor(queue.JanitorOptions{
		Inspector: d.insp, Logger: log, Interval: cfg.Queue.JanitorInterval,
		ArchiveMaxAge: cfg.Queue.ArchiveMaxAge, ArchiveMaxBytes: cfg.Queue.ArchiveMaxBytes,
		InlineArchiveMaxAge: cfg.Queue.InlineArchiveMaxAge,
	})
	// One dyno of many: presence and drain, the elected reporter,
	// admission by CPU and audio, the dial rate, the scaler.
	if dm.fleet, err = buildFleet(d, dm.pressure); err != nil {
		return nil, err
	}
	// Call ends MongoDB did not take wait in Redis for the reaper.
	ends := call.NewRedisEndOutbox(d.rdb)
	if dm.calls, err = buildCalls(callDeps{cfg: cfg, owner: d.owner, store: d.store, storage: d.s3,
		campaign: dm.camp, analyze: d.enq, ends: ends, fleet: &dm.fleet, log: log}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			dm.calls.shutdown(time.Now())
		}
	}()
	// Every call reaches a true end: pending ends written, lost ends
	// repaired, attempts of workers that died settled and hung up.
	dm.reaper = call.NewReaper(call.ReaperOptions{Store: d.store, Ends: ends, Rooms: dm.calls.rooms, Analyze: d.enq,
		Interval: min(30*time.Second, cfg.Worker.CallLease/3), Logger: log})
	if err := dm.registerHandlers(daemonCtx); err != nil {
		return nil, err
	}
	if err := dm.buildMonitor(); err != nil {
		return nil, err
	}
	return dm, nil
}

// registerHandlers is every task type and who handles it. A worker that
// cannot run a type (its settings are missing) does not serve its queue:
// the tasks wait, pending, for one that can (Server.Unavailable).
func (dm *daemon) registerHandlers(daemonCtx context.Context) error {
	d, cfg := dm.d, dm.d.cfg
	dm.srv.Handle(tasks.TypeSystemProbe, asynq.HandlerFunc(worker.ProbeHandler))
	dm.srv.Handle(tasks.TypeCampaignDispatch, dm.camp)
	if r := dm.calls.runner; r == nil {
		dm.srv.Unavailable(tasks.TypeCallOutbound, notSet(cfg.MissingForCalls()))
	} else {
		// Backpressure defers new calls while memory is above its warning
		// level; SIGTERM reaches a live call at once.
		dm.srv.Handle(tasks.TypeCallOutbound, dm.pressure.Middleware(tasks.TypeCallOutbound)(dm.fleet.gateCalls(endOnShutdown(daemonCtx,
			&call.Handler{Calls: d.store, Queue: d.enq, Owner: d.owner, Runner: r, Lease: cfg.Worker.CallLease}))))
	}
	if !cfg.OpenAI.Enabled() {
		dm.srv.Unavailable(tasks.TypeCallAnalyze, notSet(cfg.MissingForAnalysis()))
		return nil
	}
	chat, err := analysis.NewClient(analysis.ClientConfig{APIKey: cfg.OpenAI.APIKey, BaseURL: cfg.OpenAI.BaseURL})
	if err != nil {
		return err
	}
	an, err := analysis.New(d.store, chat, analysis.Options{Model: cfg.OpenAI.AnalysisModel, Outcomes: dm.camp})
	if err != nil {
		return err
	}
	dm.srv.Handle(tasks.TypeCallAnalyze, an)
	return nil
}

// buildMonitor builds the periodic checks, the heartbeat and the
// threshold evaluator, after the handlers: its first evaluation counts
// this worker's queues as served.
func (dm *daemon) buildMonitor() (err error) {
	d, cfg := dm.d, dm.d.cfg
	dm.snaps = monitor.NewRedisSnapshots(d.redis, 3*cfg.Health.EvalInterval)
	dm.mon, err = monitor.NewMonitor(monitor.MonitorOptions{
		Logger: d.log, Worker: d.owner,
		Checks: []monitor.ScheduledCheck{
			{Check: health.RedisCheck(d.redis), Interval: cfg.Health.RedisInterval},
			{Check: health.Check{Name: "mongodb", Run: func(ctx context.Context) (string, error) { return health.MongoPing(ctx, d.store) }},
				Interval: cfg.Health.MongoInterval},
			{Check: health.Check{Name: "s3", Run: func(ctx context.Context) (string, error) { return health.S3Probe(ctx, d.s3) }},
				Interval: cfg.Health.S3Interval},
		},
		HeartbeatInterval: cfg.Health.WorkerInterval, EvalInterval: cfg.Health.EvalInterval,
		Thresholds: thresholds(cfg.Health), Queues: dm.queueStats, Serving: dm.srv.Serves,
		Redis:    func(ctx context.Context) (queue.RedisInfo, error) { return queue.Inspect(ctx, d.redis) },
		Pressure: dm.pressure, Publish: dm.snaps.Publish, Reporter: dm.fleet.reporter.Leader,
	})
	return err
}

func (dm *daemon) queueStats(ctx context.Context) ([]queue.QueueStats, error) {
	return queue.Stats(ctx, dm.d.insp)
}

// start starts the parts, in this order:
//  1. the recording spool (calls can be recorded from the first task);
//  2. the reaper, the dispatch ticker, the queue janitor and the fleet's
//     parts (presence, reporter election, admission, scaler);
//  3. the metrics endpoint and the monitor;
//  4. the task server, last: nothing is taken before all the rest runs.
//
// On an error, what started is stopped again.
func (dm *daemon) start() error {
	dm.calls.start()
	dm.reaper.Start()
	dm.ticker.Start()
	dm.janitor.Start()
	dm.fleet.start()
	if addr := dm.d.cfg.Health.MetricsAddr; addr != "" {
		ms, err := monitor.StartMetricsServer(addr, monitor.MetricsHandler(dm.mon, dm.queueStats), dm.d.log)
		if err != nil {
			dm.shutdown(time.Now())
			return err
		}
		dm.metrics = ms
	}
	dm.mon.Start()
	if err := dm.srv.Start(); err != nil {
		dm.shutdown(time.Now())
		return err
	}
	return nil
}

// shutdown stops the parts, stopAt being when the stop was asked for
// (SIGTERM), in this order:
//  1. the task server: no new task; live calls (told at SIGTERM) end
//     politely and the other tasks finish, or go back to their queue;
//  2. the recording spool, with what is left of the shutdown budget since
//     stopAt (the calls handed it what storage had not taken);
//  3. the reaper, the dispatch ticker, the queue janitor and the fleet's
//     parts (the reporter's lease is released);
//  4. the monitor and the metrics endpoint, then the snapshots' client.
//
// MongoDB and Redis close after it (deps.close), the log shipper last.
func (dm *daemon) shutdown(stopAt time.Time) {
	dm.srv.Shutdown()
	dm.calls.shutdown(stopAt)
	dm.reaper.Shutdown()
	dm.ticker.Shutdown()
	dm.janitor.Shutdown()
	dm.fleet.shutdown()
	dm.mon.Shutdown()
	if dm.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = dm.metrics.Shutdown(ctx)
		cancel()
	}
	_ = dm.snaps.Close()
}

// notSet says which settings are missing, for `worker.queues`.
func notSet(vars []string) string { return strings.Join(vars, ", ") + " not set" }
