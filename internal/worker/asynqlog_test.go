package worker

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestAsynqLinesGetEventNames(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	a := newAsynqLogger(zap.New(core))
	a.Error("Dequeue error: UNKNOWN: redis command error: dial tcp 127.0.0.1:6379: connect: connection refused")
	a.Error("Dequeue error: UNKNOWN: again") // held back: same event within the interval
	a.Warn("Retry exhausted for task id=abc-1")
	a.Warn("Retry exhausted for task id=abc-2") // another task: not held back
	a.Info("Pushed task id=abc-3 back to queue")
	a.Fatal("something asynq v0.27 says")

	var got []string
	for _, e := range logs.All() {
		m := e.ContextMap()
		id, _ := m["task_id"].(string)
		got = append(got, e.Level.String()+" "+e.Message+" "+id+"|"+m["detail"].(string))
	}
	require.Equal(t, []string{
		"error asynq.dequeue_failed |Dequeue error: UNKNOWN: redis command error: dial tcp 127.0.0.1:6379: connect: connection refused",
		"warn asynq.retry_exhausted abc-1|Retry exhausted for task id=abc-1",
		"warn asynq.retry_exhausted abc-2|Retry exhausted for task id=abc-2",
		"info asynq.task_requeued abc-3|Pushed task id=abc-3 back to queue",
		"error asynq.log |something asynq v0.27 says",
	}, got)
}
