package main

import (
	"context"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/elect"
	"github.com/docshield/voice-worker/internal/fleet"
	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/redis/go-redis/v9"
)

// verifyFleet checks what the fleet shares: the connection budgets of
// MongoDB and Redis at FLEET_MAX_DYNOS, the dial rate and the scaler, from
// the settings; then, when Redis is configured, who holds the fleet's
// leases (the reporter, and the scaler with AUTOSCALE).
func verifyFleet(ctx context.Context, e env, _ verifyOptions) []health.Finding {
	cfg, err := config.LoadFleet(e.lookup)
	if err != nil {
		return configFinding("fleet", err)
	}
	fc := cfg.Fleet
	findings := fleet.VerifyBudgets(fleet.BudgetInput{
		Dynos: fc.MaxDynos, Concurrency: cfg.Worker.Concurrency, MongoPool: int(cfg.Mongo.MaxPoolSize),
		MongoMaxConnections: fc.MongoMaxConnections, RedisMaxConnections: fc.RedisMaxConnections,
	})
	f := &health.Findings{Target: "fleet"}
	switch {
	case fc.DialRatePerSecond > 0:
		f.OK("dial rate", "%g dials a second on the trunk for the whole fleet (burst %d, a call waits at most %s for its slot)",
			fc.DialRatePerSecond, fc.DialRateBurst, fc.DialRateMaxWait)
	case fc.MaxDynos > 1:
		f.Warn("dial rate", "DIAL_RATE_PER_SECOND not set: %d dynos dial as they like, and a carrier answers 503 or 429 past its rate; set it a little under the trunk's limit", fc.MaxDynos)
	default:
		f.OK("dial rate", "no fleet-wide cap (one dyno)")
	}
	if a := fc.Autoscale; a.Enabled {
		f.OK("autoscale", "%s formation of %s between %d and %d dynos at %d calls each; shrinks only after draining (at most %s)",
			a.ProcessType, a.App, a.MinDynos, a.MaxDynos, a.CallsPerDyno, a.DrainTimeout)
	} else {
		f.OK("autoscale", "off (AUTOSCALE=true turns the formation scaler on)")
	}
	if rc, err := config.LoadRedis(e.lookup); err == nil {
		roles := []string{"reporter"}
		if fc.Autoscale.Enabled {
			roles = append(roles, "scaler")
		}
		leaders(ctx, f, rc, roles)
	}
	return append(findings, f.List...)
}

// leaders reports each role's lease holder: the first thing to check when
// no alert or no scaling comes (RUNBOOK 10d, 10e).
func leaders(ctx context.Context, f *health.Findings, rc config.Redis, roles []string) {
	opt, err := queue.ConnOpt(rc)
	if err != nil {
		f.Fail("leaders", "%s", config.OneLine(err))
		return
	}
	c := opt.MakeRedisClient().(redis.UniversalClient)
	defer c.Close()
	for _, role := range roles {
		item := "leader " + role
		owner, left, err := elect.HolderAndLeft(ctx, c, role)
		switch {
		case err != nil:
			f.Warn(item, "could not read the lease: %v", err)
		case owner == "":
			f.Warn(item, "nobody holds it: no worker runs, or none reaches Redis, or the holder just stopped (another takes it within a lease)")
		default:
			f.OK(item, "held by %s, %s left on its lease", owner, left.Round(100*time.Millisecond))
		}
	}
}
