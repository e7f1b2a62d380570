package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/stretchr/testify/require"
)

func workerSnapshot(name string, rssMB float64, pressure bool) Snapshot {
	th := DefaultThresholds()
	rss := newReading(MetricRSS, "", rssMB, UnitMB, th.RSSMB)
	rss.Level = th.RSSMB.Level(rssMB)
	cpu := newReading(MetricCPU, "", 12.5, UnitPercent, th.CPUPercent)
	cpu.Level, cpu.Detail = SeverityOK, "of 1 CPUs"
	stale := newReading(MetricQueueLength, "calls", 999, UnitTasks, th.QueueLength)
	return Snapshot{Worker: name, Readings: []MetricReading{cpu, rss, stale}, UnderPressure: pressure}
}

func TestCurrentMetricsCombinesWorkersAndLiveQueues(t *testing.T) {
	src := MetricSources{
		Snapshots: func(context.Context) ([]Snapshot, error) {
			return []Snapshot{workerSnapshot("worker.1/7", 300, false), workerSnapshot("worker.2/9", 470, true)}, nil
		},
		Queues: func(context.Context) ([]queue.QueueStats, error) {
			return []queue.QueueStats{{Queue: "calls", Servers: 2, Pending: 180, Retry: 30}, {Queue: "default", Pending: 1, Paused: true}}, nil
		},
	}
	rs := CurrentMetrics(context.Background(), src, DefaultThresholds())

	var queues, rssRows []MetricReading
	for _, r := range rs {
		switch r.Name {
		case MetricQueueLength:
			queues = append(queues, r)
		case MetricRSS:
			rssRows = append(rssRows, r)
		}
	}
	require.Len(t, queues, 2, "queue rows come from the live read, not from snapshots")
	require.Equal(t, 210.0, queues[0].Value)
	require.Equal(t, SeverityCritical, queues[0].Level)
	require.Contains(t, queues[1].Detail, "paused")
	require.Len(t, rssRows, 2)
	require.Equal(t, "worker.2/9", rssRows[1].Scope)
	require.Equal(t, SeverityWarning, rssRows[1].Level)
	require.Contains(t, rssRows[1].Detail, "backpressure on")
	require.Equal(t, SeverityCritical, WorstLevel(rs))

	var out bytes.Buffer
	require.NoError(t, WriteMetrics(&out, rs))
	table := out.String()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	require.Len(t, lines, 1+2+2+2+1) // header, 2 cpu, 2 rss, 2 queues, unserved
	require.Regexp(t, `^METRIC\s+SCOPE\s+VALUE\s+WARNING\s+CRITICAL\s+LEVEL\s+DETAIL`, lines[0])
	require.Regexp(t, `cpu\s+worker\.1/7\s+12\.5%\s+70\.0%\s+85\.0%\s+ok`, table)
	require.Regexp(t, `memory_rss\s+worker\.2/9\s+470 MB\s+450 MB\s+490 MB\s+warning`, table)
	require.Regexp(t, `queue_length\s+calls\s+210\s+100\s+200\s+critical\s+pending 180, scheduled 0, retry 30`, table)
	require.True(t, strings.HasPrefix(lines[len(lines)-2], "queue_length"), "queues come last")
	// default is paused and no worker serves it: its one task waits.
	require.Regexp(t, `queue_unserved\s+-\s+1\s+1\s+1\s+critical\s+default: 1 \(no running worker serves it\)`, lines[len(lines)-1])
}

func TestCurrentMetricsReportsWhatItCannotRead(t *testing.T) {
	src := MetricSources{
		Snapshots: func(context.Context) ([]Snapshot, error) { return nil, nil },
		Queues: func(context.Context) ([]queue.QueueStats, error) {
			return nil, errors.New("redis 127.0.0.1:6379: connection refused")
		},
	}
	rs := CurrentMetrics(context.Background(), src, DefaultThresholds())
	require.Len(t, rs, 2)
	require.Equal(t, "worker", rs[0].Name)
	require.Contains(t, rs[0].Error, "no worker has published metrics")
	require.Contains(t, rs[1].Error, "connection refused")

	var out bytes.Buffer
	require.NoError(t, WriteMetrics(&out, rs))
	require.Regexp(t, `queue_length\s+-\s+\?\s+-\s+-\s+UNAVAILABLE\s+redis 127\.0\.0\.1:6379: connection refused`, out.String())

	src.Snapshots = func(context.Context) ([]Snapshot, error) { return nil, errors.New("timeout") }
	rs = CurrentMetrics(context.Background(), src, DefaultThresholds())
	require.Contains(t, rs[0].Error, "reading published metrics: timeout")
}

func TestWriteMetricsJSON(t *testing.T) {
	rs := []MetricReading{
		{Name: MetricCPU, Value: 90, Unit: UnitPercent, Warning: 70, Critical: 85, Level: SeverityCritical},
		{Name: MetricCgroupMemory, Value: 200, Unit: UnitMB},
	}
	var out bytes.Buffer
	require.NoError(t, WriteMetricsJSON(&out, rs))
	var got struct {
		Level   string           `json:"level"`
		Metrics []map[string]any `json:"metrics"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Equal(t, "critical", got.Level)
	require.Equal(t, "critical", got.Metrics[0]["level"])
	require.Equal(t, "", got.Metrics[1]["level"])
	require.NotContains(t, got.Metrics[1], "warning", "an informational metric has no thresholds")
}
