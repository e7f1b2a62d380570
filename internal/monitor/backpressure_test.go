package monitor_test

// These tests import internal/worker, so they live outside package monitor:
// worker may then import health without an import cycle in tests.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// worker.RetryDelay honours ErrBackpressure's RetryAfter, wrapped or not,
// so a deferred call comes back after one evaluation rather than after the
// call backoff (a minute and up).
func TestBackpressureRetryDelay(t *testing.T) {
	call := asynq.NewTask(tasks.TypeCallOutbound, nil)
	require.Equal(t, 30*time.Second, monitor.BackpressureRetryAfter)
	require.Equal(t, monitor.BackpressureRetryAfter, worker.RetryDelay(0, monitor.ErrBackpressure, call))
	require.Equal(t, monitor.BackpressureRetryAfter, worker.RetryDelay(2, fmt.Errorf("middleware: %w", monitor.ErrBackpressure), call))
}

// deferred is the test worker.isFailure should make (see the report):
// an error that says it deferred the task is not a failure.
func deferred(err error) bool {
	var d interface{ Deferred() bool }
	return errors.As(err, &d) && d.Deferred()
}

func TestErrBackpressureSaysDeferred(t *testing.T) {
	require.True(t, deferred(monitor.ErrBackpressure))
	require.True(t, deferred(fmt.Errorf("x: %w", monitor.ErrBackpressure)))
	require.False(t, deferred(errors.New("dial failed")))
}

// End to end through a real asynq server: a call task deferred by
// backpressure goes to the retry set for BackpressureRetryAfter without
// running, and without being counted as a failure or an attempt, provided
// the server's IsFailure returns false for deferred errors (the change the
// worker package needs; this test configures it that way).
func TestBackpressureDefersThroughAsynq(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: testenv.StartRedis(t).Addr()}
	p := monitor.NewPressure(zap.NewNop())
	p.SetUnderPressureForTest(true, 470)

	var runs atomic.Int32
	mux := asynq.NewServeMux()
	mux.Use(p.Middleware(tasks.TypeCallOutbound))
	mux.HandleFunc(tasks.TypeCallOutbound, func(context.Context, *asynq.Task) error {
		runs.Add(1)
		return nil
	})
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:       1,
		Queues:            tasks.Queues,
		RetryDelayFunc:    worker.RetryDelay,
		IsFailure:         func(err error) bool { return !deferred(err) },
		TaskCheckInterval: 50 * time.Millisecond,
		LogLevel:          asynq.FatalLevel,
	})
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)

	c := asynq.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	before := time.Now()
	info, err := c.Enqueue(asynq.NewTask(tasks.TypeCallOutbound, []byte(`{"attempt_id":"x"}`)),
		asynq.Queue(tasks.QueueCalls), asynq.MaxRetry(3))
	require.NoError(t, err)

	var got *asynq.TaskInfo
	require.Eventually(t, func() bool {
		ti, err := insp.GetTaskInfo(tasks.QueueCalls, info.ID)
		if err != nil || ti.State != asynq.TaskStateRetry {
			return false
		}
		got = ti
		return true
	}, 15*time.Second, 20*time.Millisecond, "the task should be put back for retry")

	require.Equal(t, int32(0), runs.Load(), "the handler never ran")
	require.Equal(t, 0, got.Retried, "a deferral does not use up an attempt")
	require.Contains(t, got.LastErr, "memory pressure")
	require.WithinRange(t, got.NextProcessAt,
		before.Add(monitor.BackpressureRetryAfter-time.Second), time.Now().Add(monitor.BackpressureRetryAfter+time.Second))
	q, err := insp.GetQueueInfo(tasks.QueueCalls)
	require.NoError(t, err)
	require.Equal(t, 0, q.FailedTotal, "not counted towards the error rate")
	require.Equal(t, 0, q.ProcessedTotal)
}
