package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// snapshotPrefix keys one snapshot per worker process. It is outside
// asynq's "asynq:" namespace so asynq never sees it.
const snapshotPrefix = "docshield:health:snapshot:"

// maxSnapshots bounds Read: far more worker processes than we would ever
// run, and a guard against scanning forever.
const maxSnapshots = 1000

// RedisSnapshots carries each worker's latest evaluation through Redis, so
// `worker health` (a one-off dyno) can show the worker dynos' CPU and
// memory, which only they can measure. Each snapshot expires after ttl, so
// a stopped or crashed worker drops out of the table by itself.
type RedisSnapshots struct {
	c   redis.UniversalClient
	ttl time.Duration
}

// NewRedisSnapshots connects lazily with the same settings as asynq. ttl
// should be a few evaluation intervals (3 × 30 s).
func NewRedisSnapshots(opt asynq.RedisClientOpt, ttl time.Duration) *RedisSnapshots {
	return &RedisSnapshots{c: opt.MakeRedisClient().(redis.UniversalClient), ttl: ttl}
}

// Close releases the connection pool.
func (s *RedisSnapshots) Close() error { return s.c.Close() }

// Publish stores snap under its worker's key, replacing the previous one.
func (s *RedisSnapshots) Publish(ctx context.Context, snap Snapshot) error {
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := s.c.Set(ctx, snapshotPrefix+snap.Worker, b, s.ttl).Err(); err != nil {
		return fmt.Errorf("publish snapshot: %w", err)
	}
	return nil
}

// Read returns every unexpired snapshot, by worker name.
func (s *RedisSnapshots) Read(ctx context.Context) ([]Snapshot, error) {
	var keys []string
	seen := map[string]bool{} // SCAN may return a key twice
	var cursor uint64
	for {
		batch, next, err := s.c.Scan(ctx, cursor, snapshotPrefix+"*", 100).Result()
		if err != nil {
			return nil, fmt.Errorf("scan snapshots: %w", err)
		}
		for _, k := range batch {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		if cursor = next; cursor == 0 || len(keys) >= maxSnapshots {
			break
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read snapshots: %w", err)
	}
	out := make([]Snapshot, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // expired between SCAN and MGET
		}
		var snap Snapshot
		if err := json.Unmarshal([]byte(str), &snap); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", keys[i], err)
		}
		out = append(out, snap)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Worker < out[j].Worker })
	return out, nil
}
