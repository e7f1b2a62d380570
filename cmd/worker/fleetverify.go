package main

import (
	"context"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/fleet"
	"github.com/docshield/voice-worker/internal/health"
)

// verifyFleet checks what the fleet shares: the connection budgets of
// MongoDB and Redis at FLEET_MAX_DYNOS, the dial rate and the scaler. It
// reads only settings, so it needs no connection.
func verifyFleet(_ context.Context, e env, _ verifyOptions) []health.Finding {
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
	return append(findings, f.List...)
}
