package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// jsonLines parses every non-empty line of out as one JSON object; a line
// that is not one fails the test, quoted.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "not a JSON line: %q", l)
		lines = append(lines, m)
	}
	return lines
}

func withMsg(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// Redis killed under a running worker: what go-redis and asynq say about it
// arrives as JSON lines with stable event names, throttled, never as plain
// text on stdout or stderr (Heroku ships both; only JSON reaches LogTail's
// queries).
func TestRedisOutageLogsOnlyJSONEvents(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	w := startWorker(t, stackEnv(t, r.URL()))
	waitFor(t, "worker.start", func() bool { return strings.Contains(w.out.String(), `"msg":"worker.start"`) })

	r.Kill()
	// A held-back count proves the throttle at work: go-redis repeats its
	// dial failure several times a second while Redis is down.
	waitFor(t, "a throttled go-redis event", func() bool {
		for _, l := range strings.Split(w.out.String(), "\n") {
			if strings.Contains(l, `"msg":"redis.pool"`) && strings.Contains(l, `"suppressed":`) {
				return true
			}
		}
		return false
	})
	r.Start()
	require.NoError(t, w.sigterm(t), w.out.String())

	lines := jsonLines(t, w.out.String()) // stdout and stderr, merged
	// worker.config says where derived settings came from, with units.
	cfg := withMsg(lines, "worker.config")
	require.NotEmpty(t, cfg)
	require.Equal(t, "MONGODB_DATABASE", cfg[0]["mongodb_database_from"])
	require.EqualValues(t, 6000, cfg[0]["shutdown_timeout_ms"])
	require.NotEmpty(t, cfg[0]["memory_levels_from"])
	require.NotContains(t, cfg[0], "shutdown_timeout")
	pool := withMsg(lines, "redis.pool")
	require.NotEmpty(t, pool)
	require.Contains(t, pool[0]["detail"], "dial", "go-redis's text is kept in detail")
	require.Equal(t, "warn", pool[0]["level"])
	require.Equal(t, "docshield-worker", pool[0]["service"])
	for _, l := range lines {
		msg, _ := l["msg"].(string)
		require.False(t, strings.HasPrefix(msg, "redis: ") || strings.Contains(msg, " "), "free text as an event name: %q", msg)
	}
	// A line per event per 10 s at most (plus the first): the outage lasted
	// long enough to hold some back, and the count says how many.
	suppressed := 0
	for _, l := range pool {
		if n, ok := l["suppressed"].(float64); ok {
			suppressed += int(n)
		}
	}
	require.Greater(t, suppressed, 0)
	t.Logf("outage: %d redis.pool lines written, %d held back; asynq events: %v", len(pool), suppressed, asynqEvents(lines))
}

func asynqEvents(lines []map[string]any) []string {
	var evs []string
	for _, l := range lines {
		if msg, _ := l["msg"].(string); strings.HasPrefix(msg, "asynq.") && !slices.Contains(evs, msg) {
			evs = append(evs, msg)
		}
	}
	return evs
}

// The database is the one MONGODB_URI's path names, as the backend's
// driver reads it; a different MONGODB_DATABASE beside it is refused.
func TestDatabaseFromMongoURIPath(t *testing.T) {
	t.Parallel()
	db := testenv.UniqueName(t)
	base := strings.TrimRight(testenv.MongoURI(t), "/")
	if i := strings.Index(base, "/?"); i >= 0 {
		t.Fatalf("stack URI with options: %s", base)
	}
	env := map[string]string{"MONGODB_URI": base + "/" + db}

	res := runBin(t, env, "migrate", "--json")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	c, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	names, err := c.Database(db).ListCollectionNames(context.Background(), bson.D{})
	require.NoError(t, err)
	require.Contains(t, names, "contacts", "migrate wrote to the URI's database")
	t.Cleanup(func() { _ = c.Database(db).Drop(context.Background()) })

	env["MONGODB_DATABASE"] = "docshield"
	res = runBin(t, env, "migrate")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "MONGODB_DATABASE")
	require.Contains(t, res.stderr, "MONGODB_URI names database")
}

// In development a person reads the lines: zap's console encoder, same
// events, same redaction. Staging and production refuse it.
func TestConsoleLogsInDevelopmentOnly(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	env["LOG_FORMAT"] = "console"
	w := startWorker(t, env)
	waitFor(t, "worker.start", func() bool { return strings.Contains(w.out.String(), "worker.start") })
	require.NoError(t, w.sigterm(t), w.out.String())
	out := w.out.String()
	require.Regexp(t, `(?m)^\d\d:\d\d:\d\d\.\d{3}  INFO  \S+  worker\.start  `, out)
	require.Regexp(t, `(?m)  worker\.config  .*"mongodb_database_from": "MONGODB_DATABASE"`, out)
	require.NotContains(t, out, `"msg":`)
	require.NotContains(t, out, env["AWS_SECRET_ACCESS_KEY"])

	env["APP_ENV"] = "staging"
	res := runBin(t, env, "run")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "LOG_FORMAT: console is for APP_ENV=development only")
}

// metricsPost is one report hmetrics sent.
type metricsPost struct {
	contentType string
	body        map[string]map[string]float64
}

// The real binary serves Prometheus metrics on METRICS_ADDR (a real
// scrape: runtime, process, task and queue series) and, given
// HEROKU_METRICS_URL (a loopback server stands in for Heroku's), reports
// the Go runtime's metrics there.
func TestMetricsEndpointAndHerokuRuntimeMetrics(t *testing.T) {
	t.Parallel()
	posts := make(chan metricsPost, 16)
	heroku := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p metricsPost
		p.contentType = r.Header.Get("Content-Type")
		_ = json.NewDecoder(r.Body).Decode(&p.body)
		select {
		case posts <- p:
		default:
		}
	}))
	defer heroku.Close()

	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	env["METRICS_ADDR"], env["HEROKU_METRICS_URL"] = addr, heroku.URL+"/metrics/abc-token"
	w := startWorker(t, env)
	waitFor(t, "worker.start", func() bool { return strings.Contains(w.out.String(), `"msg":"worker.start"`) })
	require.Contains(t, w.out.String(), `"msg":"metrics.heroku_reporting"`)
	require.NotContains(t, w.out.String(), "abc-token", "the endpoint's path is not logged")

	client, insp := asynqClients(t, r)
	probe, err := tasks.New(tasks.SystemProbe{}, asynq.TaskID("metrics-probe"), asynq.Retention(time.Hour))
	require.NoError(t, err)
	_, err = client.Enqueue(probe)
	require.NoError(t, err)
	waitFor(t, "probe completed", func() bool {
		info, err := insp.GetTaskInfo(tasks.QueueLow, "metrics-probe")
		return err == nil && info.State == asynq.TaskStateCompleted
	})

	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	body := string(b)
	for _, want := range []string{
		`docshield_tasks_processed_total{outcome="ok",queue="low",task_type="system:probe"} 1`,
		`docshield_task_duration_seconds_count{outcome="ok",task_type="system:probe"} 1`,
		`asynq_tasks_enqueued_total{queue="low",state="completed"} 1`,
		"docshield_queue_stats_up 1",
		"go_goroutines ",
		"process_resident_memory_bytes ",
		`docshield_health_check_up{component="redis"} 1`,
	} {
		require.Contains(t, body, want)
	}

	// hmetrics reports every 20 s.
	select {
	case p := <-posts:
		require.Equal(t, "application/json", p.contentType)
		require.Greater(t, p.body["gauges"]["go.routines"], 1.0)
		require.Greater(t, p.body["gauges"]["go.memory.heap.bytes"], 0.0)
		require.Contains(t, p.body["counters"], "go.gc.collections")
	case <-time.After(60 * time.Second):
		t.Fatal("no runtime metrics reported to HEROKU_METRICS_URL within 60 s")
	}
	require.NoError(t, w.sigterm(t), w.out.String())
}

// With LogTail shipping on, the stdout copy of each line is marked
// "shipped" (the Heroku drain's source drops those: each line reaches
// Better Stack once); the shipped line itself is not; without shipping,
// nothing is marked.
func TestStdoutCopyOfShippedLinesIsMarked(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	sink := &logSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	env := stackEnv(t, r.URL())
	env["LOGTAIL_SOURCE_TOKEN"], env["LOGTAIL_INGEST_URL"] = "lt-token", srv.URL
	w := startWorker(t, env)
	waitFor(t, "worker.start", func() bool { return strings.Contains(w.out.String(), `"msg":"worker.start"`) })
	require.NoError(t, w.sigterm(t), w.out.String())

	lines := jsonLines(t, w.out.String())
	require.NotEmpty(t, withMsg(lines, "worker.start"))
	for _, l := range lines {
		if l["service"] == "docshield-worker" {
			require.Equal(t, true, l["shipped"], "%v", l)
		}
	}
	shipped := sink.all()
	require.Contains(t, shipped, `"msg":"worker.start"`)
	require.NotContains(t, shipped, `"shipped"`)

	delete(env, "LOGTAIL_SOURCE_TOKEN")
	res := runBin(t, map[string]string{"APP_ENV": "staging", "REDIS_URL": "redis://x"}, "run")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stdout, `"msg":"config.invalid"`)
	require.NotContains(t, res.stdout, `"shipped"`, "never shipped: the drain keeps it")
}

// A check failing on its settings lists each problem, separated, on its
// one table row.
func TestHealthTableSeparatesConfigProblems(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "MONGODB_URI": "mongodb://127.0.0.1:1/a",
		"MONGODB_DATABASE": "b", "MONGODB_MAX_POOL_SIZE": "0", "AWS_REGION": "x", "S3_BUCKET": "b"}
	res := runBin(t, env, "health", "--timeout", "1s")
	require.Equal(t, 1, res.code)
	require.Regexp(t, `(?m)^mongodb\s+FAIL\s.*invalid configuration \(2 problems\): MONGODB_DATABASE: .*; MONGODB_MAX_POOL_SIZE: `, res.stdout)
}
