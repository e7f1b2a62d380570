package main

import (
	"io"
	"os"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/logging"
	"go.uber.org/zap"
	"golang.org/x/term"
)

// configFields are the settings in effect, for `worker.config`: nothing
// secret (the Redis URL without its password), and where each derived
// value came from (the database, the memory levels).
func configFields(cfg config.Config) []zap.Field {
	return []zap.Field{
		zap.String("redis", logging.RedactURL(cfg.Redis.URL)), zap.String("redis_source", cfg.Redis.Source),
		zap.Bool("redis_ca_cert", cfg.Redis.CACertPEM != ""),
		zap.String("mongodb_database", cfg.Mongo.Database), zap.String("mongodb_database_from", cfg.Mongo.DatabaseSource),
		zap.String("s3_bucket", cfg.S3.Bucket),
		zap.Int("concurrency", cfg.Worker.Concurrency),
		zap.Int64("shutdown_timeout_ms", cfg.Worker.ShutdownTimeout.Milliseconds()),
		zap.Int("memory_warn_mb", cfg.Health.MemWarnMB), zap.Int("memory_crit_mb", cfg.Health.MemCritMB),
		zap.String("memory_levels_from", cfg.Health.MemorySource),
		zap.String("metrics_addr", cfg.Health.MetricsAddr), zap.Bool("heroku_metrics", cfg.Health.HerokuMetricsURL != ""),
	}
}

// consoleLogs decides stdout's format: console lines for a person in
// development (LOG_FORMAT=console, or auto on a terminal), JSON otherwise.
func consoleLogs(cfg config.Config, stdout io.Writer) bool {
	switch cfg.LogFormat {
	case config.LogConsole:
		return true
	case config.LogAuto:
		f, ok := stdout.(*os.File)
		return cfg.Env == config.Development && ok && term.IsTerminal(int(f.Fd()))
	default:
		return false
	}
}
