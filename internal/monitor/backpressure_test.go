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
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
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

// End to end through the worker's real server: a call task deferred by
// backpressure goes back for BackpressureRetryAfter without running, without
// being counted as a failure or an attempt, and without a log line of its
// own. One whose producer set MaxRetry 0 (which asynq archives on any
// error) is not archived either: it is requeued, and runs once the
// pressure is off.
func TestBackpressureDefersThroughAsynq(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: testenv.StartRedis(t).Addr()}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	p := monitor.NewPressure(log)
	p.SetUnderPressureForTest(true, 470)

	var runs atomic.Int32
	srv := worker.New(worker.Options{Redis: opt, Concurrency: 1, ShutdownTimeout: 5 * time.Second, Logger: log})
	for _, typ := range tasks.Types {
		srv.Handle(typ, p.Middleware(tasks.TypeCallOutbound)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			runs.Add(1)
			return nil
		})))
	}
	testenv.Run(t, srv.Run)

	c := asynq.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	before := time.Now()
	info, err := c.Enqueue(asynq.NewTask(tasks.TypeCallOutbound, []byte(`{"attempt_id":"attempt-0001"}`)),
		asynq.Queue(tasks.QueueCalls), asynq.MaxRetry(3))
	require.NoError(t, err)
	zero, err := c.Enqueue(asynq.NewTask(tasks.TypeCallOutbound, []byte(`{"attempt_id":"attempt-0002"}`)),
		asynq.Queue(tasks.QueueCalls), asynq.MaxRetry(0), asynq.TaskID("zero-retry"))
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
	require.Equal(t, 0, got.Retried, "a deferral does not use up an attempt")
	require.Contains(t, got.LastErr, "memory pressure")
	require.WithinRange(t, got.NextProcessAt,
		before.Add(monitor.BackpressureRetryAfter-time.Second), time.Now().Add(monitor.BackpressureRetryAfter+time.Second))

	// MaxRetry 0: the original is gone, not archived; its copy waits with
	// the type's whole budget.
	var cp *asynq.TaskInfo
	require.Eventually(t, func() bool {
		ti, err := insp.GetTaskInfo(tasks.QueueCalls, zero.ID+"~1")
		cp = ti
		return err == nil
	}, 15*time.Second, 20*time.Millisecond, "the MaxRetry 0 task should be requeued")
	require.Eventually(t, func() bool {
		_, err := insp.GetTaskInfo(tasks.QueueCalls, zero.ID)
		return errors.Is(err, asynq.ErrTaskNotFound)
	}, 15*time.Second, 20*time.Millisecond, "the original is dropped once its copy is queued")
	require.Equal(t, asynq.TaskStateScheduled, cp.State)
	require.Equal(t, tasks.MaxRetry(tasks.TypeCallOutbound), cp.MaxRetry)
	require.Equal(t, []byte(`{"attempt_id":"attempt-0002"}`), cp.Payload)
	q, err := insp.GetQueueInfo(tasks.QueueCalls)
	require.NoError(t, err)
	require.Equal(t, 0, q.Archived)
	require.Equal(t, 0, q.FailedTotal, "not counted towards the error rate")
	require.Equal(t, int32(0), runs.Load(), "the handler never ran")

	// Pressure off: the copy runs (brought forward rather than waited for).
	p.SetUnderPressureForTest(false, 300)
	require.NoError(t, insp.RunTask(tasks.QueueCalls, cp.ID))
	require.Eventually(t, func() bool { return runs.Load() == 1 }, 15*time.Second, 20*time.Millisecond)

	// No per-task line above debug; the episode's counts are on the off line.
	for _, e := range logs.FilterMessage("task.deferred").All() {
		require.Equal(t, zapcore.DebugLevel, e.Level)
	}
	off := logs.FilterMessage("backpressure.off").All()
	require.Len(t, off, 1)
	require.GreaterOrEqual(t, off[0].ContextMap()["deferrals"], int64(2))
	require.Equal(t, int64(2), off[0].ContextMap()["deferred_tasks"])
}
