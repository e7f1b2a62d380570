package queue

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RedisInfo is what `verify redis` reports about the server.
type RedisInfo struct {
	Version          string
	Role             string
	MaxmemoryPolicy  string
	AOFEnabled       bool
	UsedMemoryBytes  int64
	MaxMemoryBytes   int64 // 0 = no limit
	ConnectedClients int
}

// NoEviction is the only maxmemory policy under which Redis never deletes a
// queued job to make room.
const NoEviction = "noeviction"

// client returns a go-redis client with the same settings asynq uses.
func client(opt asynq.RedisClientOpt) redis.UniversalClient {
	return opt.MakeRedisClient().(redis.UniversalClient)
}

// Ping measures one round trip.
func Ping(ctx context.Context, opt asynq.RedisClientOpt) (time.Duration, error) {
	c := client(opt)
	defer c.Close()
	start := time.Now()
	if err := c.Ping(ctx).Err(); err != nil {
		return 0, fmt.Errorf("redis %s: %w", opt.Addr, err)
	}
	return time.Since(start), nil
}

// Inspect reads INFO. It uses INFO rather than CONFIG GET because managed
// Redis (Heroku, Redis Cloud) disables CONFIG.
func Inspect(ctx context.Context, opt asynq.RedisClientOpt) (RedisInfo, error) {
	c := client(opt)
	defer c.Close()
	raw, err := c.Info(ctx, "server", "memory", "persistence", "replication", "clients").Result()
	if err != nil {
		return RedisInfo{}, fmt.Errorf("redis %s: INFO: %w", opt.Addr, err)
	}
	return parseInfo(raw), nil
}

func parseInfo(raw string) RedisInfo {
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			kv[k] = v
		}
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(kv[k], 10, 64); return n }
	return RedisInfo{
		Version:          kv["redis_version"],
		Role:             kv["role"],
		MaxmemoryPolicy:  kv["maxmemory_policy"],
		AOFEnabled:       kv["aof_enabled"] == "1",
		UsedMemoryBytes:  num("used_memory"),
		MaxMemoryBytes:   num("maxmemory"),
		ConnectedClients: int(num("connected_clients")),
	}
}
