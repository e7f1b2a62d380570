package logging

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// LibraryLogInterval is how often one library event (a go-redis or asynq
// line of one kind) may be logged while it repeats.
const LibraryLogInterval = 10 * time.Second

// RouteRedis sends go-redis's own lines (by default plain text on stderr:
// failed dials, pool trouble) through log as warn lines with a stable event
// name (RedisEvent) and the text in "detail", at most one per event every
// LibraryLogInterval, the next carrying "suppressed". go-redis has one
// logger per process: the last call wins.
func RouteRedis(log *zap.Logger) {
	redis.SetLogger(&redisLogger{log: log.WithOptions(zap.WithCaller(false)), thr: NewThrottle(LibraryLogInterval, nil)})
}

// RouteRedisText sends go-redis's lines to w as plain text, throttled the
// same way, for the short commands: their own error already says what
// failed, and a person reads w.
func RouteRedisText(w io.Writer) {
	redis.SetLogger(&redisText{w: w, thr: NewThrottle(LibraryLogInterval, nil)})
}

type redisLogger struct {
	log *zap.Logger
	thr *Throttle
}

func (l *redisLogger) Printf(_ context.Context, format string, v ...any) {
	event := RedisEvent(format)
	ok, suppressed := l.thr.Allow(event)
	if !ok {
		return
	}
	fields := []zap.Field{zap.String("detail", strings.TrimSpace(fmt.Sprintf(format, v...)))}
	if suppressed > 0 {
		fields = append(fields, zap.Int("suppressed", suppressed))
	}
	l.log.Warn(event, fields...)
}

type redisText struct {
	w   io.Writer
	thr *Throttle
}

func (l *redisText) Printf(_ context.Context, format string, v ...any) {
	event := RedisEvent(format)
	ok, suppressed := l.thr.Allow(event)
	if !ok {
		return
	}
	line := RedactString(strings.TrimSpace(fmt.Sprintf(format, v...)))
	if suppressed > 0 {
		line += fmt.Sprintf(" (%d more like it since)", suppressed)
	}
	fmt.Fprintf(l.w, "worker: %s: %s\n", event, line)
}

// RedisEvent names a go-redis log line by the format it was written with,
// which is stable where the text (addresses, counts, errors) is not:
// redis.pool (dialing and the connection pool: what an outage writes),
// redis.conn (one connection's trouble), redis.pubsub, redis.cluster,
// redis.sentinel, and redis.client for anything else.
func RedisEvent(format string) string {
	f := strings.ToLower(strings.TrimPrefix(format, "redis: "))
	switch {
	case strings.Contains(f, "connection pool") || strings.Contains(f, "dial"):
		return "redis.pool"
	case strings.HasPrefix(f, "sentinel:"):
		return "redis.sentinel"
	case strings.HasPrefix(f, "cluster:") || strings.Contains(f, "nodes are") || strings.Contains(f, "all nodes"):
		return "redis.cluster"
	case strings.HasPrefix(f, "pubsub:") || strings.HasPrefix(f, "push:"):
		return "redis.pubsub"
	case strings.Contains(f, "conn"):
		return "redis.conn"
	default:
		return "redis.client"
	}
}
