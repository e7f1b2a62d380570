package terraform_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Heroku's events (R14, crashes, releases) reach Better Stack through a
// drain to a source of its own, never through the app's source.
func TestHerokuLogDrain(t *testing.T) {
	cfg := loadConfig(t)
	d := findBlock(t, cfg, "resource", "heroku_drain", "platform")
	requireRefersTo(t, attr(t, d, "app_id"), "heroku_app.worker.id")
	requireRefersTo(t, attr(t, d, "sensitive_url"), "var.logtail_heroku_drain_url")
	_, plain := d.Body.Attributes["url"]
	require.False(t, plain, "the drain URL holds a token: sensitive_url, not url")
	v := findBlock(t, cfg, "variable", "logtail_heroku_drain_url")
	require.True(t, cfg.flag(t, v, "sensitive"))
}

// The drain source's transformation drops exactly the stdout lines the
// worker also shipped over HTTP, so no line arrives twice, and keeps the
// platform's lines and everything the worker did not ship. Its pattern is
// run here against lines the worker's own logger writes, as Better Stack
// may hold them: the raw text of the syslog message, or its JSON parsed
// into fields.
func TestDrainTransformationDropsOnlyShippedLines(t *testing.T) {
	src, err := os.ReadFile("betterstack-heroku.vrl")
	require.NoError(t, err)
	m := regexp.MustCompile(`match\(encode_json\(\.\), r'([^']+)'\)`).FindSubmatch(src)
	require.NotNil(t, m, "the transformation matches encode_json(.) against a raw-string pattern")
	require.Contains(t, string(src), "del(.)")
	dropped := regexp.MustCompile(string(m[1]))

	line := func(fields ...zap.Field) string {
		var buf bytes.Buffer
		l, err := logging.New(logging.Options{Out: zapcore.AddSync(&buf), OutFields: fields,
			Fields: []zap.Field{zap.String("service", logging.Service), zap.String("env", "production")}})
		require.NoError(t, err)
		l.Info("task.done", zap.String("task_id", "t1"), zap.String("detail", "shipped: nothing"))
		return strings.TrimSpace(buf.String())
	}
	// As Better Stack may keep an event: the message as text, or parsed.
	forms := func(msg string) []string {
		asText, err := json.Marshal(map[string]any{"message": msg, "syslog": map[string]string{"appname": "app", "procid": "worker.1"}})
		require.NoError(t, err)
		out := []string{string(asText)}
		var parsed map[string]any
		if json.Unmarshal([]byte(msg), &parsed) == nil {
			asFields, err := json.Marshal(map[string]any{"message_json": parsed, "message": msg})
			require.NoError(t, err)
			out = append(out, string(asFields))
		}
		return out
	}
	for _, f := range forms(line(logging.ShippedField())) {
		require.True(t, dropped.MatchString(f), "a shipped line is dropped: %s", f)
	}
	kept := []string{
		line(), // the shipper was off (config.invalid, LogTail unset)
		`{"level":"error","ts":"2026-01-01T00:00:00Z","msg":"logtail.rejected","component":"logtail","status":403}`,
		"Error R14 (Memory quota exceeded)",
		"Process running mem=1024M(200.0%)",
		"State changed from up to crashed",
		"Stopping process with SIGKILL",
		"Release v42 created by user ops@example.com",
		"worker: redis.pool: redis: connection pool: failed to dial after 5 attempts",
	}
	for _, k := range kept {
		for _, f := range forms(k) {
			require.False(t, dropped.MatchString(f), "kept: %s", f)
		}
	}
}
