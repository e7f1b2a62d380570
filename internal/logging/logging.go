// Package logging builds the process's zap logger: JSON lines on stdout
// (Heroku's log stream), or zap's console lines for a person in
// development, plus any extra sinks (LogTail, always JSON), all behind the
// same redaction. Log messages are stable event names ("task.done",
// "health.failed") so alerts in LogTail can match them; the libraries'
// own loggers (go-redis here, asynq in package worker) are routed through
// it with event names of their own, throttled so an outage cannot flood.
package logging

import (
	"context"
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Service is the "service" field of every line the daemon writes.
const Service = "docshield-worker"

// ShippedField marks, on stdout only, a line also handed to the LogTail
// shipper. Heroku's log drain carries stdout to Better Stack too: its source
// drops the lines so marked (terraform/betterstack-heroku.vrl), so each line
// arrives once, and keeps every other (platform events, lines written
// before or without the shipper, one-off dynos' output, the shipper's own
// notices).
func ShippedField() zap.Field { return zap.Bool("shipped", true) }

// Options for New.
type Options struct {
	// Level is debug, info, warn or error.
	Level string
	// Out is where lines go; stdout when nil.
	Out zapcore.WriteSyncer
	// Console writes Out's lines with zap's console encoder (time, level,
	// event, caller, then the fields as JSON) for a person reading a
	// terminal. Sinks get JSON whatever this says.
	Console bool
	// Sinks are extra cores (the LogTail shipper) that receive every entry
	// Out receives.
	Sinks []zapcore.Core
	// Fields are added to every line (service, env, dyno, version).
	Fields []zap.Field
	// OutFields are added to Out's lines only (ShippedField).
	OutFields []zap.Field
}

// EncoderConfig is the JSON shape of every line: `ts` in RFC 3339 with
// milliseconds, `level`, `msg` (the event name), `caller`.
func EncoderConfig() zapcore.EncoderConfig {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	ec.EncodeDuration = zapcore.MillisDurationEncoder
	return ec
}

// ConsoleEncoderConfig is EncoderConfig for a person: a short local time and
// the level in capitals; the event name and fields come out the same.
func ConsoleEncoderConfig() zapcore.EncoderConfig {
	ec := EncoderConfig()
	ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	ec.EncodeLevel = zapcore.CapitalLevelEncoder
	ec.ConsoleSeparator = "  "
	return ec
}

// New builds the logger. Extra sinks see the same entries as stdout.
func New(o Options) (*zap.Logger, error) {
	var lvl zapcore.Level
	if o.Level == "" {
		o.Level = "info"
	}
	if err := lvl.UnmarshalText([]byte(o.Level)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	out := o.Out
	if out == nil {
		out = zapcore.Lock(os.Stdout)
	}
	// Each leaf core is wrapped on its own: Redact writes straight to the
	// core it wraps, so it must wrap something that already filtered levels.
	enc := zapcore.NewJSONEncoder(EncoderConfig())
	if o.Console {
		enc = zapcore.NewConsoleEncoder(ConsoleEncoderConfig())
	}
	cores := []zapcore.Core{Redact(zapcore.NewCore(enc, out, lvl).With(o.OutFields))}
	for _, s := range o.Sinks {
		cores = append(cores, Redact(levelFiltered{Core: s, min: lvl}))
	}
	return zap.New(zapcore.NewTee(cores...), zap.AddCaller(), zap.AddStacktrace(zapcore.DPanicLevel)).With(o.Fields...), nil
}

// levelFiltered applies the process's level to a sink that has none of its own.
type levelFiltered struct {
	zapcore.Core
	min zapcore.Level
}

func (l levelFiltered) Enabled(lvl zapcore.Level) bool { return lvl >= l.min && l.Core.Enabled(lvl) }

func (l levelFiltered) With(f []zapcore.Field) zapcore.Core {
	return levelFiltered{Core: l.Core.With(f), min: l.min}
}

func (l levelFiltered) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if !l.Enabled(e.Level) {
		return ce
	}
	return l.Core.Check(e, ce)
}

type ctxKey struct{}

// WithContext returns ctx carrying l, so code deep in a task logs with the
// task's fields (task id, type, attempt id) without passing them around.
func WithContext(ctx context.Context, l *zap.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// FromContext returns the logger in ctx, or a no-op logger.
func FromContext(ctx context.Context) *zap.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*zap.Logger); ok {
		return l
	}
	return zap.NewNop()
}
