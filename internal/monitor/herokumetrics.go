package monitor

import (
	"context"
	"net/url"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"github.com/heroku/x/hmetrics"
	"go.uber.org/zap"
)

// HerokuMetrics reports the Go runtime's metrics (heap, GC pauses and
// collections, goroutines) to Heroku's language-metrics endpoint, every
// 20 s, with Heroku's own client (hmetrics), so they appear in the Heroku
// dashboard's Metrics tab beside the dyno's memory and load. Heroku sets
// the endpoint (HEROKU_METRICS_URL) on dynos of an app with language
// metrics enabled, worker dynos included; without it nothing runs.
//
// One goroutine, started by Start and stopped by Shutdown, as the
// monitor's duties are. hmetrics allows one reporter per process.
type HerokuMetrics struct {
	url string      // immutable
	log *zap.Logger // immutable

	// Set by Start, read by Shutdown, both on the daemon's goroutine.
	cancel context.CancelFunc
	done   chan struct{}
}

// herokuMetricsErrorInterval spaces the warnings of a failing endpoint.
const herokuMetricsErrorInterval = 5 * time.Minute

// NewHerokuMetrics reports to endpoint; "" reports nothing.
func NewHerokuMetrics(endpoint string, log *zap.Logger) *HerokuMetrics {
	return &HerokuMetrics{url: endpoint, log: log}
}

// Start begins reporting (nothing without an endpoint).
func (h *HerokuMetrics) Start() {
	if h.url == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	thr := logging.NewThrottle(herokuMetricsErrorInterval, nil)
	h.log.Info("metrics.heroku_reporting", zap.String("host", hostOf(h.url)))
	go func() {
		defer close(h.done)
		// A failed report is logged (at most once per interval, with the
		// count since) and the next one tried: the dashboard has a gap,
		// the worker is unaffected.
		err := hmetrics.Report(ctx, h.url, func(err error) error {
			if ok, suppressed := thr.Allow("report"); ok {
				h.log.Warn("metrics.heroku_failed", zap.Error(err), zap.Int("suppressed", suppressed))
			}
			return nil
		})
		if err != nil {
			h.log.Warn("metrics.heroku_failed", zap.Error(err))
		}
	}()
}

// Shutdown stops reporting and waits for the goroutine.
func (h *HerokuMetrics) Shutdown() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
}

// hostOf is the endpoint's host, for the log: its path may hold a token.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL]"
	}
	return u.Host
}
