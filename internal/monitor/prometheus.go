package monitor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/queue"
	"go.uber.org/zap"
)

// The metrics endpoint writes Prometheus's text exposition format by hand:
// a dozen gauges do not justify prometheus/client_golang in go.mod. The
// asynq_* series use the names and labels of asynq's x/metrics collector
// (a separate module), so dashboards built for it work unchanged; its
// memory-usage gauge is left out because queue.Stats does not carry it.

// scrapeTimeout bounds the Redis reads behind one scrape.
const scrapeTimeout = 5 * time.Second

// MetricsHandler serves the monitor's latest evaluation and check results,
// and asynq's queue metrics read from Redis at scrape time (nil queues
// leaves those out).
func MetricsHandler(m *Monitor, queues func(context.Context) ([]queue.QueueStats, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), scrapeTimeout)
		defer cancel()
		var buf bytes.Buffer
		writeExposition(&buf, m.Latest(), m.CheckResults())
		if queues != nil {
			stats, err := queues(ctx)
			writeQueueExposition(&buf, stats, err)
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	})
}

// promWriter writes families; a family's HELP and TYPE come once, before
// its first sample.
type promWriter struct {
	w    io.Writer
	seen map[string]bool
}

type label struct{ name, value string }

func (p *promWriter) sample(name, typ, help string, v float64, labels ...label) {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if !p.seen[name] {
		p.seen[name] = true
		fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	var ls []string
	for _, l := range labels {
		ls = append(ls, l.name+`="`+escapeLabel(l.value)+`"`)
	}
	if len(ls) > 0 {
		fmt.Fprintf(p.w, "%s{%s} %s\n", name, strings.Join(ls, ","), strconv.FormatFloat(v, 'g', -1, 64))
		return
	}
	fmt.Fprintf(p.w, "%s %s\n", name, strconv.FormatFloat(v, 'g', -1, 64))
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func writeExposition(w io.Writer, snap Snapshot, checks []health.Result) {
	p := &promWriter{w: w}
	p.sample("go_goroutines", "gauge", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	for _, r := range snap.Readings {
		switch r.Name {
		case MetricCPU:
			p.sample("docshield_cpu_percent", "gauge", "Process CPU use as a percent of the cgroup CPU limit.", r.Value)
		case MetricRSS:
			p.sample("docshield_memory_rss_bytes", "gauge", "Process resident set size.", r.Value*bytesPerMB)
		case MetricCgroupMemory:
			p.sample("docshield_memory_cgroup_bytes", "gauge", "Memory charged to the process's cgroup, page cache included.", r.Value*bytesPerMB)
		case MetricErrorRate:
			p.sample("docshield_task_error_rate_percent", "gauge", "Failed task attempts as a percent of processed ones over the rolling window.", r.Value)
		case MetricRedisMemory:
			if r.Unit == UnitPercent {
				p.sample("docshield_redis_memory_percent", "gauge", "Redis used_memory as a percent of its maxmemory.", r.Value)
			}
		case MetricUnserved:
			p.sample("docshield_queue_unserved_tasks", "gauge", "Tasks waiting on queues no running worker serves.", r.Value)
		}
	}
	for _, r := range snap.Readings {
		if r.Level == SeverityNone {
			continue
		}
		p.sample("docshield_alert_level", "gauge", "Alert level per metric: 0 ok, 1 warning, 2 critical.",
			float64(r.Level-SeverityOK), label{"metric", r.Name}, label{"scope", r.Scope})
	}
	if !snap.At.IsZero() {
		p.sample("docshield_backpressure", "gauge", "1 while call tasks are deferred for memory pressure.", boolValue(snap.UnderPressure))
		p.sample("docshield_evaluation_timestamp_seconds", "gauge", "When the thresholds were last evaluated.", float64(snap.At.UnixMilli())/1000)
	}
	for _, c := range checks {
		p.sample("docshield_health_check_up", "gauge", "1 if the dependency's last periodic check passed.", boolValue(c.OK), label{"component", c.Name})
	}
	for _, c := range checks {
		p.sample("docshield_health_check_latency_seconds", "gauge", "Duration of the dependency's last periodic check.", c.LatencyMS/1000, label{"component", c.Name})
	}
}

func writeQueueExposition(w io.Writer, stats []queue.QueueStats, err error) {
	p := &promWriter{w: w}
	p.sample("docshield_queue_stats_up", "gauge", "1 if the queues could be read from Redis for this scrape.", boolValue(err == nil))
	if err != nil {
		return
	}
	for _, s := range stats {
		for _, st := range []struct {
			state string
			n     int
		}{{"active", s.Active}, {"pending", s.Pending}, {"scheduled", s.Scheduled}, {"retry", s.Retry}, {"archived", s.Archived}, {"completed", s.Completed}} {
			p.sample("asynq_tasks_enqueued_total", "gauge", "Number of tasks enqueued; broken down by queue and state.",
				float64(st.n), label{"queue", s.Queue}, label{"state", st.state})
		}
	}
	for _, s := range stats {
		size := s.Active + s.Pending + s.Scheduled + s.Retry + s.Archived + s.Completed
		p.sample("asynq_queue_size", "gauge", "Number of tasks in a queue.", float64(size), label{"queue", s.Queue})
	}
	for _, s := range stats {
		p.sample("asynq_queue_latency_seconds", "gauge", "Number of seconds the oldest pending task is waiting in pending state to be processed.",
			s.Latency.Seconds(), label{"queue", s.Queue})
	}
	for _, s := range stats {
		p.sample("asynq_tasks_processed_total", "counter", "Number of processed tasks; both succeeded and failed.", float64(s.ProcessedTotal), label{"queue", s.Queue})
	}
	for _, s := range stats {
		p.sample("asynq_tasks_failed_total", "counter", "Number of times a task failed.", float64(s.FailedTotal), label{"queue", s.Queue})
	}
	for _, s := range stats {
		p.sample("asynq_queue_paused_total", "gauge", "Number of queues paused.", boolValue(s.Paused), label{"queue", s.Queue})
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
