package main

import (
	"context"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/queue"
)

func cmdHealth(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "health", "health [--json] [--timeout 10s]")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	timeout := fs.Duration("timeout", 10*time.Second, "time limit for each check")
	if code, done := parse(e, fs, args); done {
		return code
	}
	results := health.RunAll(ctx, *timeout, healthChecks(ctx, e)...)
	write := health.WriteTable
	if *asJSON {
		write = health.WriteJSON
	}
	if err := write(e.stdout, results); err != nil {
		return 1
	}
	if !health.AllOK(results) {
		return 1
	}
	return 0
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
		return "", fmt.Errorf("configuration: %w", err)
	}}
}
