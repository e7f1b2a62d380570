package health

import (
	"context"
	"fmt"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/hibiken/asynq"
)

// RedisCheck is the `health` check for Redis: one PING.
func RedisCheck(opt asynq.RedisClientOpt) Check {
	return Check{Name: "redis", Run: func(ctx context.Context) (string, error) {
		d, err := queue.Ping(ctx, opt)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("PING %s in %s", opt.Addr, d.Round(10_000)), nil
	}}
}

// VerifyRedis looks deeper: reachability, server facts that decide whether
// jobs survive (eviction policy, AOF), and the queues' backlog.
func VerifyRedis(ctx context.Context, opt asynq.RedisClientOpt) []Finding {
	f := &Findings{Target: "redis"}
	d, err := queue.Ping(ctx, opt)
	if err != nil {
		f.Fail("ping", "%v: check REDIS_URL, the add-on's status (heroku redis:info) and TLS settings", err)
		return f.List
	}
	f.OK("ping", "%s answered in %s", opt.Addr, d.Round(10_000))
	info, err := queue.Inspect(ctx, opt)
	if err != nil {
		f.Fail("info", "%v", err)
		return f.List
	}
	f.OK("server", "redis %s, role %s, %d clients", info.Version, info.Role, info.ConnectedClients)
	switch info.MaxmemoryPolicy {
	case queue.NoEviction:
		f.OK("maxmemory-policy", "noeviction: a full Redis refuses writes instead of deleting jobs")
	case "":
		f.Warn("maxmemory-policy", "not reported by INFO; make sure the provider is set to noeviction")
	default:
		f.Warn("maxmemory-policy", "%s: an evicting Redis can silently delete queued jobs; set noeviction", info.MaxmemoryPolicy)
	}
	if info.AOFEnabled {
		f.OK("aof", "append-only file on: pending jobs survive a restart")
	} else {
		f.Warn("aof", "append-only file off: a Redis restart may lose recently queued jobs (managed Redis may persist by other means; check the plan)")
	}
	if info.MaxMemoryBytes > 0 {
		pct := float64(info.UsedMemoryBytes) * 100 / float64(info.MaxMemoryBytes)
		level := f.OK
		if pct >= 80 {
			level = f.Warn
		}
		level("memory", "%.0f%% of maxmemory used (%d of %d bytes)", pct, info.UsedMemoryBytes, info.MaxMemoryBytes)
	} else {
		f.OK("memory", "%d bytes used, no maxmemory limit", info.UsedMemoryBytes)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	stats, err := queue.Stats(ctx, insp)
	if err != nil {
		f.Fail("queues", "%v", err)
		return f.List
	}
	for _, s := range stats {
		f.OK("queue "+s.Queue, "backlog %d (pending %d, scheduled %d, retry %d), active %d, archived %d, paused %v",
			s.Backlog(), s.Pending, s.Scheduled, s.Retry, s.Active, s.Archived, s.Paused)
	}
	return f.List
}
