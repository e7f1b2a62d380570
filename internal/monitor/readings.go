package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docshield/voice-worker/internal/health"
	"github.com/docshield/voice-worker/internal/queue"
)

// Metric names, as they appear in `alert` events, snapshots and the table.
const (
	MetricCPU          = "cpu"            // percent of the cgroup's CPU limit
	MetricRSS          = "memory_rss"     // MB
	MetricCgroupMemory = "memory_cgroup"  // MB, informational (includes page cache)
	MetricQueueLength  = "queue_length"   // tasks, per queue
	MetricErrorRate    = "error_rate"     // percent over the error-rate window
	MetricRedisMemory  = "redis_memory"   // percent of Redis's maxmemory (MB when it has none)
	MetricUnserved     = "queue_unserved" // tasks waiting on queues no running worker serves
)

// Units.
const (
	UnitPercent = "%"
	UnitMB      = "MB"
	UnitTasks   = "tasks"
)

// bytesPerMB: Heroku's "512 MB" dyno and its R14 limit count MiB.
const bytesPerMB = 1 << 20

// MetricReading is one metric's value against its thresholds.
type MetricReading struct {
	Name     string   `json:"name"`
	Scope    string   `json:"scope,omitempty"` // queue name, or the worker that measured it
	Value    float64  `json:"value"`
	Unit     string   `json:"unit"`
	Warning  float64  `json:"warning,omitempty"` // zero: informational, not graded
	Critical float64  `json:"critical,omitempty"`
	Level    Severity `json:"level"`
	Detail   string   `json:"detail,omitempty"`
	Error    string   `json:"error,omitempty"` // the metric could not be read
}

func (r MetricReading) key() string { return r.Name + "/" + r.Scope }

func newReading(name, scope string, v float64, unit string, th Threshold) MetricReading {
	return MetricReading{Name: name, Scope: scope, Value: v, Unit: unit, Warning: th.Warning, Critical: th.Critical}
}

// Snapshot is one evaluation's readings from one worker process. The
// daemon publishes it (see RedisSnapshots) because process metrics can only
// be measured inside the process: `worker health` runs in a one-off dyno.
type Snapshot struct {
	Worker        string          `json:"worker"`
	At            time.Time       `json:"at"`
	Readings      []MetricReading `json:"readings"`
	UnderPressure bool            `json:"under_pressure"`
}

// MetricSources is where `worker health` gets its readings.
type MetricSources struct {
	// Queues reads the queues now (cluster-wide, meaningful from any process).
	Queues func(context.Context) ([]queue.QueueStats, error)
	// Snapshots returns what running workers last published; nil skips the
	// per-process rows.
	Snapshots func(context.Context) ([]Snapshot, error)
	// Redis reads Redis's INFO now; nil leaves out its memory.
	Redis func(context.Context) (queue.RedisInfo, error)
}

// CurrentMetrics is the snapshot behind `worker health`: every running
// worker's CPU, memory and error rate as it last evaluated them, and each
// queue's length read now and graded by th. A metric that cannot be read is
// a row with Error set, never a missing row.
func CurrentMetrics(ctx context.Context, src MetricSources, th Thresholds) []MetricReading {
	var out []MetricReading
	if src.Snapshots != nil {
		snaps, err := src.Snapshots(ctx)
		switch {
		case err != nil:
			out = append(out, MetricReading{Name: "worker", Error: fmt.Sprintf("reading published metrics: %v", err)})
		case len(snaps) == 0:
			out = append(out, MetricReading{Name: "worker", Error: "no worker has published metrics recently: is `worker run` up?"})
		}
		for _, s := range snaps {
			for _, r := range s.Readings {
				if r.Name == MetricQueueLength || r.Name == MetricUnserved || r.Name == MetricRedisMemory {
					continue // read live below
				}
				r.Scope = s.Worker
				if r.Name == MetricRSS && s.UnderPressure {
					r.Detail = joinDetail(r.Detail, "backpressure on: call tasks deferred")
				}
				out = append(out, r)
			}
		}
	}
	if src.Queues != nil {
		stats, err := src.Queues(ctx)
		if err != nil {
			out = append(out, MetricReading{Name: MetricQueueLength, Unit: UnitTasks, Error: err.Error()})
		}
		if err == nil {
			out = append(out, queueReadings(stats, th, nil)...)
		}
	}
	if src.Redis != nil {
		info, err := src.Redis(ctx)
		out = append(out, redisMemoryReading(info, err, th.RedisMemoryPercent))
	}
	return out
}

// queueReadings turns the queues' stats into each queue's length and the
// count of tasks waiting where no running worker serves them. serving
// lists the queues the caller itself serves, which its own heartbeat may
// not have written to Redis yet.
func queueReadings(stats []queue.QueueStats, th Thresholds, serving []string) []MetricReading {
	out := make([]MetricReading, 0, len(stats)+1)
	unserved := newReading(MetricUnserved, "", 0, UnitTasks, th.UnservedTasks)
	var where []string
	for _, s := range stats {
		out = append(out, queueReading(s, th.QueueLength))
		if slices.Contains(serving, s.Queue) || !s.Unserved() {
			continue
		}
		unserved.Value += float64(s.Backlog())
		why := "no running worker serves it"
		if s.Foreign {
			why = "not one of our queues: no worker will ever serve it"
		}
		where = append(where, fmt.Sprintf("%s: %d (%s)", s.Queue, s.Backlog(), why))
	}
	unserved.Detail = strings.Join(where, "; ")
	unserved.Level = th.UnservedTasks.Level(unserved.Value)
	return append(out, unserved)
}

// redisMemoryReading grades used_memory against maxmemory. Without a
// maxmemory Redis grows until its host runs out: shown in MB, not graded.
func redisMemoryReading(info queue.RedisInfo, err error, th Threshold) MetricReading {
	if err != nil {
		return MetricReading{Name: MetricRedisMemory, Unit: UnitPercent, Error: err.Error()}
	}
	usedMB := float64(info.UsedMemoryBytes) / bytesPerMB
	if info.MaxMemoryBytes <= 0 {
		r := newReading(MetricRedisMemory, "", usedMB, UnitMB, Threshold{})
		r.Detail = "Redis has no maxmemory: not graded"
		return r
	}
	r := newReading(MetricRedisMemory, "", 100*float64(info.UsedMemoryBytes)/float64(info.MaxMemoryBytes), UnitPercent, th)
	r.Detail = fmt.Sprintf("%.1f of %.0f MB, policy %s", usedMB, float64(info.MaxMemoryBytes)/bytesPerMB, info.MaxmemoryPolicy)
	r.Level = th.Level(r.Value)
	return r
}

// queueReading turns a queue's stats into its length reading, graded by th
// alone (the evaluator regrades it with history, as every reading here).
func queueReading(s queue.QueueStats, th Threshold) MetricReading {
	r := newReading(MetricQueueLength, s.Queue, float64(s.Backlog()), UnitTasks, th)
	r.Detail = fmt.Sprintf("pending %d, scheduled %d, retry %d, active %d; served by %d workers", s.Pending, s.Scheduled, s.Retry, s.Active, s.Servers)
	if s.Paused {
		r.Detail += ", paused"
	}
	r.Level = th.Level(r.Value)
	return r
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// WorstLevel is the highest level among rs, for an exit status.
func WorstLevel(rs []MetricReading) Severity {
	w := SeverityNone
	for _, r := range rs {
		w = max(w, r.Level)
	}
	return w
}

// WriteMetrics prints readings against their thresholds for a person.
func WriteMetrics(w io.Writer, rs []MetricReading) error {
	rs = append([]MetricReading(nil), rs...)
	sort.SliceStable(rs, func(i, j int) bool { return metricOrder(rs[i].Name) < metricOrder(rs[j].Name) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tSCOPE\tVALUE\tWARNING\tCRITICAL\tLEVEL\tDETAIL")
	for _, r := range rs {
		value, warn, crit, level, detail := formatValue(r.Value, r.Unit), "-", "-", r.Level.String(), r.Detail
		if r.Warning > 0 || r.Critical > 0 {
			warn, crit = formatValue(r.Warning, r.Unit), formatValue(r.Critical, r.Unit)
		}
		if level == "" {
			level = "-"
		}
		if r.Error != "" {
			value, level, detail = "?", "UNAVAILABLE", r.Error
		}
		scope := r.Scope
		if scope == "" {
			scope = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, scope, value, warn, crit, level, health.OneLine(detail))
	}
	return tw.Flush()
}

// WriteMetricsJSON prints readings for scripts.
func WriteMetricsJSON(w io.Writer, rs []MetricReading) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Level   Severity        `json:"level"`
		Metrics []MetricReading `json:"metrics"`
	}{WorstLevel(rs), rs})
}

func metricOrder(name string) int {
	for i, n := range []string{"worker", MetricCPU, MetricRSS, MetricCgroupMemory, MetricErrorRate, MetricRedisMemory, MetricQueueLength, MetricUnserved} {
		if n == name {
			return i
		}
	}
	return 99
}

func formatValue(v float64, unit string) string {
	switch unit {
	case UnitPercent:
		return fmt.Sprintf("%.1f%%", v)
	case UnitMB:
		return fmt.Sprintf("%.0f MB", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
