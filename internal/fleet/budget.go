package fleet

import (
	"fmt"

	"github.com/docshield/voice-worker/internal/health"
)

// What one worker dyno holds open, at most. The figures are the peak
// under load, not the idle count: go-redis and the MongoDB driver open
// connections on demand and keep them idle for up to 30 minutes.
const (
	// MongoMonitorConns: the Go driver holds a monitoring connection and
	// a round-trip-time connection to every node, outside the pool.
	MongoMonitorConns = 2
	// AtlasReservedConns: Atlas keeps 10 connections of each node's limit
	// for itself.
	AtlasReservedConns = 10
	// asynqFixedConns: the asynq server's background duties, each one
	// command at a time (heartbeater, health checker, syncer, recoverer,
	// forwarder, dequeue loop, janitor, aggregator) and the subscriber's
	// dedicated pub/sub connection.
	asynqFixedConns = 9
	// ownFixedConns: the worker's own clients, mostly idle: the task
	// producer, the requeue client, the inspector (monitor, janitor,
	// scaler), the end outbox and presence client, the health snapshots,
	// the leases; two each.
	ownFixedConns = 12
)

// RedisConnsPerDyno is the Redis connections one dyno may hold: every
// task slot finishing at once (asynq's workers write the result), every
// call booking its dial slot at once (the dial-rate script), and the
// fixed duties.
func RedisConnsPerDyno(concurrency int) int {
	return 2*concurrency + asynqFixedConns + ownFixedConns
}

// MongoConnsPerNode is the connections one dyno may hold to the primary
// (every read and write goes there): its pool, full, and the monitors.
func MongoConnsPerNode(pool int) int { return pool + MongoMonitorConns }

// BudgetInput is what the budgets are computed from (config.Fleet,
// WORKER_CONCURRENCY, MONGODB_MAX_POOL_SIZE).
type BudgetInput struct {
	Dynos               int // FLEET_MAX_DYNOS
	Concurrency         int // WORKER_CONCURRENCY
	MongoPool           int // MONGODB_MAX_POOL_SIZE
	MongoMaxConnections int // MONGODB_MAX_CONNECTIONS, per node
	RedisMaxConnections int // REDIS_MAX_CONNECTIONS
}

// Budget is one service's connections at the fleet's full size.
type Budget struct {
	PerDyno, Total, Limit int
}

// Over reports whether the fleet would pass the limit.
func (b Budget) Over() bool { return b.Total > b.Limit }

// Budgets computes both services' budgets. One-off dynos (`heroku run
// worker ...`, the release phase) come on top: each holds a handful.
func Budgets(in BudgetInput) (mongo, redis Budget) {
	mongo.PerDyno = MongoConnsPerNode(in.MongoPool)
	mongo.Total = in.Dynos * mongo.PerDyno
	mongo.Limit = in.MongoMaxConnections - AtlasReservedConns
	redis.PerDyno = RedisConnsPerDyno(in.Concurrency)
	redis.Total = in.Dynos * redis.PerDyno
	redis.Limit = in.RedisMaxConnections
	return mongo, redis
}

// VerifyBudgets is `worker verify fleet`'s budget lines: a warning for each
// service the fleet at FLEET_MAX_DYNOS would hold more connections of than
// its limit allows, with what to change.
func VerifyBudgets(in BudgetInput) []health.Finding {
	f := &health.Findings{Target: "fleet"}
	mongo, redis := Budgets(in)
	line := func(item string, b Budget, per, limitVar, fix string) {
		detail := fmt.Sprintf("%d dynos × %d (%s) = %d of %d (%s)", in.Dynos, b.PerDyno, per, b.Total, b.Limit, limitVar)
		if b.Over() {
			f.Warn(item, "%s: over the limit; %s", detail, fix)
			return
		}
		f.OK(item, "%s, %d%% used", detail, b.Total*100/max(b.Limit, 1))
	}
	line("mongodb connections", mongo,
		fmt.Sprintf("pool %d + %d monitoring", in.MongoPool, MongoMonitorConns),
		fmt.Sprintf("MONGODB_MAX_CONNECTIONS %d per node, less %d Atlas keeps", in.MongoMaxConnections, AtlasReservedConns),
		"lower MONGODB_MAX_POOL_SIZE or FLEET_MAX_DYNOS, or "+atlasAdvice(mongo.Total))
	line("redis connections", redis,
		fmt.Sprintf("2 × WORKER_CONCURRENCY %d + %d", in.Concurrency, asynqFixedConns+ownFixedConns),
		fmt.Sprintf("REDIS_MAX_CONNECTIONS %d", in.RedisMaxConnections),
		"lower WORKER_CONCURRENCY or FLEET_MAX_DYNOS, or move to a Redis plan with more connections")
	return f.List
}

// AtlasTiers are Atlas's connection limits per node, by cluster tier, as
// Atlas publishes them (Atlas Service Limits), smallest first.
var AtlasTiers = []struct {
	Name  string
	Conns int
}{{"M10", 1500}, {"M20", 3000}, {"M30", 3000}, {"M40", 6000}, {"M50", 16000}, {"M60", 32000}}

// atlasAdvice names the smallest Atlas tier whose limit holds total
// connections per node, with the reserve Atlas keeps.
func atlasAdvice(total int) string {
	for _, t := range AtlasTiers {
		if t.Conns-AtlasReservedConns >= total {
			return fmt.Sprintf("move to Atlas %s or larger (%d connections per node) and set MONGODB_MAX_CONNECTIONS to match", t.Name, t.Conns)
		}
	}
	last := AtlasTiers[len(AtlasTiers)-1]
	return fmt.Sprintf("no Atlas tier up to %s (%d per node) holds it: lower the pool or the dynos", last.Name, last.Conns)
}
