package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Console lines (development) are redacted exactly as JSON lines are:
// the same core wrapper does it before either encoder sees the entry.
func TestConsoleAndJSONRedactAlike(t *testing.T) {
	write := func(console bool) string {
		var buf bytes.Buffer
		l, err := logging.New(logging.Options{Level: "info", Out: zapcore.AddSync(&buf), Console: console})
		require.NoError(t, err)
		l.With(zap.String("uri", "mongodb://u:topsecret1@h/")).Info("call.dialing",
			zap.String("to", "+15551234567"), zap.Error(errors.New("password=topsecret2 refused")))
		return buf.String()
	}
	js, console := write(false), write(true)
	require.True(t, json.Valid([]byte(strings.TrimSpace(js))))
	require.False(t, json.Valid([]byte(strings.TrimSpace(console))), "console lines are not JSON")
	require.Contains(t, console, "INFO")
	require.Contains(t, console, "call.dialing")
	for _, out := range []string{js, console} {
		for _, secret := range []string{"topsecret1", "topsecret2", "5551234"} {
			require.NotContains(t, out, secret)
		}
		require.Contains(t, out, "+*******4567")
		require.Contains(t, out, "mongodb://u:xxxxx@h/")
		require.Contains(t, out, "password=[REDACTED]")
	}
}

func TestThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	th := logging.NewThrottle(10*time.Second, func() time.Time { return now })
	ok, n := th.Allow("redis.pool")
	require.True(t, ok, "the first line passes")
	require.Zero(t, n)
	for range 5 {
		now = now.Add(time.Second)
		ok, _ = th.Allow("redis.pool")
		require.False(t, ok)
	}
	ok, _ = th.Allow("redis.conn")
	require.True(t, ok, "keys are throttled apart")
	now = now.Add(5 * time.Second)
	ok, n = th.Allow("redis.pool")
	require.True(t, ok, "an interval after the last line let through")
	require.Equal(t, 5, n, "with the count held back")
	now = now.Add(10 * time.Second)
	ok, n = th.Allow("redis.pool")
	require.True(t, ok)
	require.Zero(t, n)

	// Many distinct keys (ids in them) neither grow it without bound nor
	// hold lines back forever.
	for i := range 2000 {
		ok, _ := th.Allow("k" + string(rune('a'+i%26)) + strings.Repeat("x", i%97) + string(rune(i)))
		require.True(t, ok)
	}
}

func TestRedisEventNames(t *testing.T) {
	for format, want := range map[string]string{
		"redis: connection pool: failed to dial after %d attempts: %v":                "redis.pool",
		"redis: connection pool: failed to get a usable connection after %d attempts": "redis.pool",
		"Conn has unread data (not push notification), removing it":                   "redis.conn",
		"sentinel: GetMasterAddrByName name=%q failed: %s":                            "redis.sentinel",
		"redis: all nodes are marked as failed, picking the temporarily failing node": "redis.cluster",
		"push: error reading push notification: %v":                                   "redis.pubsub",
		"csc: disabling client-side caching: %s":                                      "redis.client",
	} {
		require.Equal(t, want, logging.RedisEvent(format), format)
	}
}

// go-redis's own logger, routed: its line becomes a warn event with the
// text in detail, redacted, and repeats are held back.
func TestRouteRedis(t *testing.T) {
	var buf syncBuffer
	l, err := logging.New(logging.Options{Level: "info", Out: zapcore.AddSync(&buf)})
	require.NoError(t, err)
	logging.RouteRedis(l)
	t.Cleanup(func() { logging.RouteRedisText(&bytes.Buffer{}) })

	// A real client dialing nothing: go-redis logs its pool's failure.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", Password: "hunter2", MaxRetries: 2,
		DialTimeout: 200 * time.Millisecond, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 2 * time.Millisecond})
	defer c.Close()
	for range 3 {
		require.Error(t, c.Ping(context.Background()).Err())
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.NotEmpty(t, lines)
	var first map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first), out)
	require.Equal(t, "redis.pool", first["msg"])
	require.Equal(t, "warn", first["level"])
	require.Contains(t, first["detail"], "127.0.0.1:1")
	require.Len(t, lines, 1, "the repeats within the interval are held back: %s", out)
	require.NotContains(t, out, "hunter2")
}
