package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/docshield/voice-worker/internal/metrics"
	"github.com/docshield/voice-worker/internal/queue"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// The metrics endpoint is prometheus/client_golang's: a registry of its own
// per handler (not the global default, so nothing else linked in adds
// series) with
//   - the Go runtime and process collectors (go_*, process_*);
//   - the tasks and calls this process ran (package metrics:
//     docshield_tasks_*, docshield_task_duration_seconds,
//     docshield_calls_ended_total);
//   - the monitor's latest evaluation and check results (docshield_*);
//   - asynq's queue metrics, read from Redis at scrape time, under the names
//     and labels of asynq's x/metrics collector (a separate module), so
//     dashboards built for it work unchanged; its memory-usage gauge is left
//     out because queue.Stats does not carry it.

// scrapeTimeout bounds the Redis reads behind one scrape.
const scrapeTimeout = 5 * time.Second

// MetricsHandler serves the Prometheus exposition above; nil queues leaves
// asynq's series out.
func MetricsHandler(m *Monitor, queues func(context.Context) ([]queue.QueueStats, error)) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		monitorCollector{m})
	reg.MustRegister(metrics.Collectors()...)
	if queues != nil {
		reg.MustRegister(queueCollector{queues})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The monitor's series.
var (
	cpuDesc          = desc("docshield_cpu_percent", "Process CPU use as a percent of the cgroup CPU limit.")
	rssDesc          = desc("docshield_memory_rss_bytes", "Process resident set size.")
	cgroupMemDesc    = desc("docshield_memory_cgroup_bytes", "Memory charged to the process's cgroup, page cache included.")
	errorRateDesc    = desc("docshield_task_error_rate_percent", "Failed task attempts as a percent of processed ones over the rolling window.")
	redisMemDesc     = desc("docshield_redis_memory_percent", "Redis used_memory as a percent of its maxmemory.")
	unservedDesc     = desc("docshield_queue_unserved_tasks", "Tasks waiting on queues no running worker serves.")
	alertLevelDesc   = desc("docshield_alert_level", "Alert level per metric: 0 ok, 1 warning, 2 critical.", "metric", "scope")
	backpressureDesc = desc("docshield_backpressure", "1 while call tasks are deferred for memory pressure.")
	evaluatedDesc    = desc("docshield_evaluation_timestamp_seconds", "When the thresholds were last evaluated.")
	checkUpDesc      = desc("docshield_health_check_up", "1 if the dependency's last periodic check passed.", "component")
	checkLatencyDesc = desc("docshield_health_check_latency_seconds", "Duration of the dependency's last periodic check.", "component")
)

// monitorCollector reads the monitor's latest evaluation at scrape time. It
// is unchecked (Describe sends nothing): which series exist depends on
// what the evaluation read.
type monitorCollector struct{ m *Monitor }

func (monitorCollector) Describe(chan<- *prometheus.Desc) {}

func (c monitorCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	snap := c.m.Latest()
	for _, r := range snap.Readings {
		switch r.Name {
		case MetricCPU:
			gauge(cpuDesc, r.Value)
		case MetricRSS:
			gauge(rssDesc, r.Value*bytesPerMB)
		case MetricCgroupMemory:
			gauge(cgroupMemDesc, r.Value*bytesPerMB)
		case MetricErrorRate:
			gauge(errorRateDesc, r.Value)
		case MetricRedisMemory:
			if r.Unit == UnitPercent {
				gauge(redisMemDesc, r.Value)
			}
		case MetricUnserved:
			gauge(unservedDesc, r.Value)
		}
		if r.Level != SeverityNone {
			gauge(alertLevelDesc, float64(r.Level-SeverityOK), r.Name, r.Scope)
		}
	}
	if !snap.At.IsZero() {
		gauge(backpressureDesc, boolValue(snap.UnderPressure))
		gauge(evaluatedDesc, float64(snap.At.UnixMilli())/1000)
	}
	for _, r := range c.m.CheckResults() {
		gauge(checkUpDesc, boolValue(r.OK), r.Name)
		gauge(checkLatencyDesc, r.LatencyMS/1000, r.Name)
	}
}

// asynq's series (x/metrics names), and whether Redis could be read.
var (
	queueStatsUpDesc  = desc("docshield_queue_stats_up", "1 if the queues could be read from Redis for this scrape.")
	tasksEnqueuedDesc = desc("asynq_tasks_enqueued_total", "Number of tasks enqueued; broken down by queue and state.", "queue", "state")
	queueSizeDesc     = desc("asynq_queue_size", "Number of tasks in a queue.", "queue")
	queueLatencyDesc  = desc("asynq_queue_latency_seconds", "Number of seconds the oldest pending task is waiting in pending state to be processed.", "queue")
	processedDesc     = desc("asynq_tasks_processed_total", "Number of processed tasks; both succeeded and failed.", "queue")
	failedDesc        = desc("asynq_tasks_failed_total", "Number of times a task failed.", "queue")
	pausedDesc        = desc("asynq_queue_paused_total", "Number of queues paused.", "queue")
)

// queueCollector reads every queue from Redis at scrape time (unchecked,
// as the queues present vary).
type queueCollector struct {
	queues func(context.Context) ([]queue.QueueStats, error)
}

func (queueCollector) Describe(chan<- *prometheus.Desc) {}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	stats, err := c.queues(ctx)
	ch <- prometheus.MustNewConstMetric(queueStatsUpDesc, prometheus.GaugeValue, boolValue(err == nil))
	if err != nil {
		return
	}
	for _, s := range stats {
		for _, st := range []struct {
			state string
			n     int
		}{{"active", s.Active}, {"pending", s.Pending}, {"scheduled", s.Scheduled}, {"retry", s.Retry}, {"archived", s.Archived}, {"completed", s.Completed}} {
			ch <- prometheus.MustNewConstMetric(tasksEnqueuedDesc, prometheus.GaugeValue, float64(st.n), s.Queue, st.state)
		}
		size := s.Active + s.Pending + s.Scheduled + s.Retry + s.Archived + s.Completed
		ch <- prometheus.MustNewConstMetric(queueSizeDesc, prometheus.GaugeValue, float64(size), s.Queue)
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, s.Latency.Seconds(), s.Queue)
		ch <- prometheus.MustNewConstMetric(processedDesc, prometheus.CounterValue, float64(s.ProcessedTotal), s.Queue)
		ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.CounterValue, float64(s.FailedTotal), s.Queue)
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, boolValue(s.Paused), s.Queue)
	}
}

// MetricsServer serves MetricsHandler on METRICS_ADDR. Heroku routes no
// traffic to worker dynos, so this is for deployments that can scrape the
// process (and for local runs).
type MetricsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error // the Serve goroutine's result
}

// StartMetricsServer listens on addr now, so a bad address fails at
// startup rather than silently later, then serves h until Shutdown.
func StartMetricsServer(addr string, h http.Handler, log *zap.Logger) (*MetricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	s := &MetricsServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 2 * scrapeTimeout},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	log.Info("metrics.listening", zap.String("addr", ln.Addr().String()))
	return s, nil
}

// Addr is the address actually listened on (useful with port 0).
func (s *MetricsServer) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting scrapes, lets one in flight finish within ctx,
// and waits for the serving goroutine.
func (s *MetricsServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}
