package worker

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/docshield/voice-worker/internal/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// asynqLogger gives asynq's lines, free text, stable event names
// ("asynq.dequeue_failed"), with the text in "detail" and a task's id in
// "task_id" when the text names one. A line that repeats (every poll while
// Redis is down) is written at most once per logging.LibraryLogInterval per
// event and task, the next one carrying "suppressed".
type asynqLogger struct {
	log *zap.Logger       // immutable
	thr *logging.Throttle // safe for concurrent use
}

func newAsynqLogger(log *zap.Logger) asynqLogger {
	return asynqLogger{log: log.WithOptions(zap.WithCaller(false)), thr: logging.NewThrottle(logging.LibraryLogInterval, nil)}
}

func (a asynqLogger) Debug(args ...any) { a.write(zapcore.DebugLevel, args) }
func (a asynqLogger) Info(args ...any)  { a.write(zapcore.InfoLevel, args) }
func (a asynqLogger) Warn(args ...any)  { a.write(zapcore.WarnLevel, args) }
func (a asynqLogger) Error(args ...any) { a.write(zapcore.ErrorLevel, args) }

// Fatal is logged at error level: asynq calls it for conditions we prefer to
// surface through Run's error rather than exit the process from a library.
func (a asynqLogger) Fatal(args ...any) { a.write(zapcore.ErrorLevel, args) }

func (a asynqLogger) write(lvl zapcore.Level, args []any) {
	text := strings.TrimSpace(fmt.Sprint(args...))
	event := AsynqEvent(text)
	fields := []zap.Field{zap.String("detail", text)}
	key := event
	if m := asynqTaskID.FindStringSubmatch(text); m != nil {
		fields = append(fields, zap.String("task_id", m[1]))
		key += "/" + m[1]
	}
	ok, suppressed := a.thr.Allow(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		fields = append(fields, zap.Int("suppressed", suppressed))
	}
	if ce := a.log.Check(lvl, event); ce != nil {
		ce.Write(fields...)
	}
}

// asynqTaskID finds the task id in asynq's "task id=…" lines.
var asynqTaskID = regexp.MustCompile(`task id=([^\s,;:]+)`)

// asynqEvents maps the start of asynq's messages (v0.26, processor,
// heartbeater, forwarder, recoverer, syncer, janitor, subscriber, server)
// to event names. Matching is by substring, in this order.
var asynqEvents = []struct{ text, event string }{
	{"Dequeue error", "asynq.dequeue_failed"},
	{"Failed to forward scheduled tasks", "asynq.forward_failed"},
	{"Failed to write server state data", "asynq.heartbeat_failed"},
	{"Failed to extend lease", "asynq.lease_extend_failed"},
	{"Lease reset failed", "asynq.lease_reset_failed"},
	{"Failed to clear server state", "asynq.state_clear_failed"},
	{"recoverer:", "asynq.recoverer_failed"},
	{"Will retry syncing", "asynq.sync_failed"},
	{"Failed to delete expired completed tasks", "asynq.janitor_failed"},
	{"cannot subscribe to cancelation channel", "asynq.subscribe_failed"},
	{"Failed to close redis client", "asynq.close_failed"},
	{"Retry exhausted for task", "asynq.retry_exhausted"},
	{"Quitting worker", "asynq.worker_quit"},
	{"revoke task", "asynq.task_revoked"},
	{"Could not push task", "asynq.requeue_failed"},
	{"back to queue", "asynq.task_requeued"},
	{"recovering from panic", "asynq.panic"},
	{"internal error", "asynq.internal_error"},
	{"Starting processing", "asynq.starting"},
	{"Starting graceful shutdown", "asynq.shutting_down"},
	{"Waiting for all workers to finish", "asynq.waiting_for_tasks"},
	{"All workers have finished", "asynq.tasks_finished"},
	{"Send signal", "asynq.signal_hint"},
	{"Exiting", "asynq.exited"},
}

// AsynqEvent names one of asynq's lines; "asynq.log" when it is none of
// the known messages (a newer asynq's, say).
func AsynqEvent(text string) string {
	for _, e := range asynqEvents {
		if strings.Contains(text, e.text) {
			return e.event
		}
	}
	return "asynq.log"
}
