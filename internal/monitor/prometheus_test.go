package monitor

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/metrics"
	"github.com/docshield/voice-worker/internal/queue"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// evaluatedMonitor is a Monitor that has run each duty once.
func evaluatedMonitor(t *testing.T) *Monitor {
	t.Helper()
	log, logs := observed()
	proc := procFS(t, map[string]string{
		"proc/self/stat":   statLine(10, 10),
		"proc/self/status": "VmRSS:\t471040 kB\n",
	}, 2)
	redis, _ := scriptedCheck("redis", nil)
	s3, _ := scriptedCheck("s3", errors.New("AccessDenied"))
	m, err := NewMonitor(MonitorOptions{
		Logger: log, Proc: &proc, Pressure: NewPressure(log),
		Checks: []ScheduledCheck{{Check: redis, Interval: time.Minute}, {Check: s3, Interval: time.Minute}},
		Queues: func(context.Context) ([]queue.QueueStats, error) {
			return []queue.QueueStats{{Queue: "calls", Pending: 150}}, nil
		},
		NewTicker: newManualTickers().New, Now: newFakeClock().Now,
	})
	require.NoError(t, err)
	m.Start()
	waitFor(t, "first runs", func() bool {
		return countOf(logs, "health.check", "", nil) == 3 && countOf(logs, "backpressure.on", "", nil) == 1
	})
	m.Shutdown()
	return m
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8"),
		rec.Header().Get("Content-Type"))
	return rec.Body.String()
}

// requireWellFormed parses body with Prometheus's own text parser (what a
// scraper runs) and returns the families.
func requireWellFormed(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err, body)
	return fams
}

func TestMetricsHandlerExposesOursAndAsynqs(t *testing.T) {
	m := evaluatedMonitor(t)
	body := scrape(t, MetricsHandler(m, func(context.Context) ([]queue.QueueStats, error) {
		return []queue.QueueStats{
			{Queue: "calls", Pending: 150, Active: 2, Retry: 1, ProcessedTotal: 40, FailedTotal: 3, Latency: 1500 * time.Millisecond},
			{Queue: "low", Paused: true},
		}, nil
	}))
	requireWellFormed(t, body)
	for _, want := range []string{
		"docshield_memory_rss_bytes 4.8234496e+08",
		`docshield_alert_level{metric="memory_rss",scope=""} 1`,
		`docshield_alert_level{metric="queue_length",scope="calls"} 1`,
		"docshield_backpressure 1",
		`docshield_health_check_up{component="redis"} 1`,
		`docshield_health_check_up{component="s3"} 0`,
		"docshield_queue_stats_up 1",
		`asynq_tasks_enqueued_total{queue="calls",state="pending"} 150`,
		`asynq_queue_size{queue="calls"} 153`,
		`asynq_queue_latency_seconds{queue="calls"} 1.5`,
		`asynq_tasks_processed_total{queue="calls"} 40`,
		`asynq_tasks_failed_total{queue="calls"} 3`,
		`asynq_queue_paused_total{queue="low"} 1`,
		"# TYPE asynq_tasks_processed_total counter",
	} {
		require.Contains(t, body, want+"\n")
	}
}

func TestMetricsHandlerWithoutRedis(t *testing.T) {
	m := evaluatedMonitor(t)
	body := scrape(t, MetricsHandler(m, func(context.Context) ([]queue.QueueStats, error) {
		return nil, errors.New("connection refused")
	}))
	requireWellFormed(t, body)
	require.Contains(t, body, "docshield_queue_stats_up 0\n")
	require.NotContains(t, body, "asynq_")
	require.Contains(t, body, "docshield_memory_rss_bytes", "our own metrics still come")
}

// A label value with quotes, a backslash and a newline (a check's name,
// a queue a producer named) is escaped, and the exposition still parses.
func TestLabelValuesAreEscaped(t *testing.T) {
	body := scrape(t, MetricsHandler(evaluatedMonitor(t), func(context.Context) ([]queue.QueueStats, error) {
		return []queue.QueueStats{{Queue: "a\"b\\c\nd", Pending: 1}}, nil
	}))
	require.Contains(t, body, `asynq_queue_size{queue="a\"b\\c\nd"} 1`)
	fams := requireWellFormed(t, body)
	require.Equal(t, "a\"b\\c\nd", fams["asynq_queue_size"].GetMetric()[0].GetLabel()[0].GetValue())
}

func TestMetricsServerServesAndShutsDown(t *testing.T) {
	log, _ := observed()
	m := evaluatedMonitor(t)
	s, err := StartMetricsServer("127.0.0.1:0", MetricsHandler(m, nil), log)
	require.NoError(t, err)
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "docshield_backpressure 1")

	resp, err = http.Post("http://"+s.Addr()+"/metrics", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	_, err = http.Get("http://" + s.Addr() + "/metrics")
	require.Error(t, err, "nothing listens after shutdown")

	_, err = StartMetricsServer("127.0.0.1:-1", MetricsHandler(m, nil), log)
	require.ErrorContains(t, err, "METRICS_ADDR")
}

// Scrapes read what the duties write; under -race this proves the sharing
// (atomic snapshot, locked check results) is sound.
func TestScrapeWhileMonitorRuns(t *testing.T) {
	log, _ := observed()
	tickers := newManualTickers()
	proc := procFS(t, map[string]string{"proc/self/stat": statLine(1, 1), "proc/self/status": "VmRSS:\t1024 kB\n"}, 2)
	redis, _ := scriptedCheck("redis", nil, errors.New("down"))
	m, err := NewMonitor(MonitorOptions{
		Logger: log, Proc: &proc, Pressure: NewPressure(log),
		Checks:    []ScheduledCheck{{Check: redis, Interval: time.Minute}},
		NewTicker: tickers.New, Now: newFakeClock().Now,
	})
	require.NoError(t, err)
	m.Start()
	defer m.Shutdown()
	h := MetricsHandler(m, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/metrics", nil))
		}
	}()
	for range 20 {
		tickers.tick(t, "evaluate")
		tickers.tick(t, "check:redis")
	}
	<-done
	requireWellFormed(t, scrape(t, h))
}

// The Go runtime and process collectors, and the tasks and calls this
// process counted, are served beside the monitor's series.
func TestMetricsHandlerServesRuntimeTaskAndCallSeries(t *testing.T) {
	metrics.TaskDone("system:probe", true, "low", "ok", 1500*time.Millisecond)
	metrics.TaskDone("call:outbound", true, "calls", "error", time.Second)
	metrics.TaskDone("no:such-type", false, "default", "rejected", time.Millisecond)
	metrics.CallEnded("completed", "answered")
	metrics.CallEnded("failed", "")

	fams := requireWellFormed(t, scrape(t, MetricsHandler(evaluatedMonitor(t), nil)))
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes",
		"process_cpu_seconds_total", "docshield_backpressure"} {
		require.Contains(t, fams, name)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		for _, m := range fams[name].GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
		t.Fatalf("%s%v not found", name, labels)
		return 0
	}
	// Other tests in this process count too: at least what this one did.
	require.GreaterOrEqual(t, value("docshield_tasks_processed_total", map[string]string{"task_type": "system:probe", "queue": "low", "outcome": "ok"}), 1.0)
	require.GreaterOrEqual(t, value("docshield_tasks_failed_total", map[string]string{"task_type": "call:outbound", "queue": "calls"}), 1.0)
	require.GreaterOrEqual(t, value("docshield_tasks_failed_total", map[string]string{"task_type": "unknown", "queue": "default"}), 1.0)
	require.GreaterOrEqual(t, value("docshield_task_duration_seconds", map[string]string{"task_type": "system:probe", "outcome": "ok"}), 1.0)
	require.GreaterOrEqual(t, value("docshield_calls_ended_total", map[string]string{"status": "completed", "outcome": "answered"}), 1.0)
	require.GreaterOrEqual(t, value("docshield_calls_ended_total", map[string]string{"status": "failed", "outcome": "none"}), 1.0)
	for _, m := range fams["docshield_tasks_failed_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			require.NotEqual(t, "system:probe", l.GetValue(), "an ok task is not a failure")
		}
	}
}
