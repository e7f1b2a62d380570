package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/hibiken/asynq"
)

func cmdHealth(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "health", "health [--json] [--timeout 10s]")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	timeout := fs.Duration("timeout", 10*time.Second, "time limit for each check")
	if code, done := parse(e, fs, args); done {
		return code
	}
	results := health.RunAll(ctx, *timeout, healthChecks(ctx, e)...)
	metrics := currentMetrics(ctx, e, *timeout)
	var err error
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(struct {
			OK      bool                    `json:"ok"`
			Checks  []health.Result         `json:"checks"`
			Metrics []monitor.MetricReading `json:"metrics,omitempty"`
		}{health.AllOK(results), results, metrics})
	} else {
		err = health.WriteTable(e.stdout, results)
		if err == nil && len(metrics) > 0 {
			fmt.Fprintln(e.stdout)
			err = monitor.WriteMetrics(e.stdout, metrics)
		}
	}
	if err != nil || !health.AllOK(results) {
		return 1
	}
	return 0
}

// currentMetrics reads each queue now and what running workers last
// published (CPU, memory, error rate), against the configured thresholds.
// Without a usable Redis there is nothing to read; the checks say why.
func currentMetrics(ctx context.Context, e env, timeout time.Duration) []monitor.MetricReading {
	rc, err := config.LoadRedis(e.lookup)
	if err != nil {
		return nil
	}
	opt, err := queue.ConnOpt(rc)
	if err != nil {
		return nil
	}
	cfg, _ := config.Load(e.lookup) // thresholds have defaults even when other sections are wrong
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := queue.Ping(ctx, opt); err != nil {
		return nil
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	snaps := monitor.NewRedisSnapshots(opt, 3*cfg.Health.EvalInterval)
	defer snaps.Close()
	return monitor.CurrentMetrics(ctx, monitor.MetricSources{
		Queues:    func(ctx context.Context) ([]queue.QueueStats, error) { return queue.Stats(ctx, insp) },
		Snapshots: snaps.Read,
		Redis:     func(ctx context.Context) (queue.RedisInfo, error) { return queue.Inspect(ctx, opt) },
	}, thresholds(cfg.Health))
}

// healthChecks builds one check per dependency. A dependency whose settings
// are wrong still gets a check: one that fails naming the variables.
func healthChecks(ctx context.Context, e env) []health.Check {
	var checks []health.Check
	if rc, err := config.LoadRedis(e.lookup); err != nil {
		checks = append(checks, failing("redis", err))
	} else if opt, err := queue.ConnOpt(rc); err != nil {
		checks = append(checks, failing("redis", err))
	} else {
		checks = append(checks, health.RedisCheck(opt))
	}
	if mc, err := config.LoadMongo(e.lookup); err != nil {
		checks = append(checks, failing("mongodb", err))
	} else {
		checks = append(checks, health.Check{Name: "mongodb", Run: func(ctx context.Context) (string, error) {
			st, err := openStore(ctx, mc)
			if err != nil {
				return "", err
			}
			defer st.Close(context.WithoutCancel(ctx))
			return health.MongoPing(ctx, st)
		}})
	}
	if sc, err := config.LoadS3(e.lookup); err != nil {
		checks = append(checks, failing("s3", err))
	} else {
		checks = append(checks, health.Check{Name: "s3", Run: func(ctx context.Context) (string, error) {
			c, err := openStorage(ctx, sc)
			if err != nil {
				return "", err
			}
			return health.S3Probe(ctx, c)
		}})
	}
	return checks
}

func failing(name string, err error) health.Check {
	return health.Check{Name: name, Run: func(context.Context) (string, error) {
		return "", errors.New(config.OneLine(err))
	}}
}
