package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/queue"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// runServer starts a worker on its own goroutine and stops it when the
// test ends.
func runServer(t *testing.T, opt asynq.RedisClientOpt, log *zap.Logger, handlers map[string]asynq.Handler) {
	t.Helper()
	srv := worker.New(worker.Options{Redis: opt, Concurrency: 4, ShutdownTimeout: 5 * time.Second, Logger: log})
	for typ, h := range handlers {
		srv.Handle(typ, h)
	}
	testenv.Run(t, srv.Run)
}

// eventually polls cond until it holds or the bounded deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func taskState(insp *asynq.Inspector, queue, id string) asynq.TaskState {
	info, err := insp.GetTaskInfo(queue, id)
	if err != nil {
		return 0
	}
	return info.State
}

func TestTaskProcessedInvalidArchivedPanicSurvived(t *testing.T) {
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	core, logs := observer.New(zapcore.DebugLevel)
	runServer(t, opt, zap.New(core), map[string]asynq.Handler{
		tasks.TypeSystemProbe: asynq.HandlerFunc(worker.ProbeHandler),
		tasks.TypeCampaignDispatch: asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			panic("handler bug")
		}),
	})
	client := asynq.NewClient(opt)
	defer client.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()

	// An invalid payload is archived with the reason, not retried.
	bad := asynq.NewTask(tasks.TypeSystemProbe, []byte(`{"hold":"2h"}`))
	badInfo, err := client.Enqueue(bad, asynq.Queue(tasks.QueueLow), asynq.MaxRetry(5))
	require.NoError(t, err)
	eventually(t, "invalid task archived", func() bool {
		return taskState(insp, tasks.QueueLow, badInfo.ID) == asynq.TaskStateArchived
	})
	info, err := insp.GetTaskInfo(tasks.QueueLow, badInfo.ID)
	require.NoError(t, err)
	require.Contains(t, info.LastErr, "hold: must be between")
	require.Equal(t, 0, info.Retried, "an invalid payload must not be retried")

	// A panicking handler becomes an error with a stack in the log, and
	// the task is retried.
	panicky := asynq.NewTask(tasks.TypeCampaignDispatch, []byte(`{"campaign_id":"65f1c0ffee0000000000abcd"}`))
	pInfo, err := client.Enqueue(panicky, asynq.Queue(tasks.QueueDefault), asynq.MaxRetry(5))
	require.NoError(t, err)
	eventually(t, "panicking task put back for retry", func() bool {
		return taskState(insp, tasks.QueueDefault, pInfo.ID) == asynq.TaskStateRetry
	})
	info, err = insp.GetTaskInfo(tasks.QueueDefault, pInfo.ID)
	require.NoError(t, err)
	require.Contains(t, info.LastErr, "panic: handler bug")
	panics := logs.FilterMessage("task.panic").All()
	require.Len(t, panics, 1)
	require.Contains(t, panics[0].ContextMap()["stack"], "worker_test.go")
	require.Equal(t, pInfo.ID, panics[0].ContextMap()["task_id"])

	// The worker keeps going: a valid task after both is processed.
	good, err := tasks.New(tasks.SystemProbe{})
	require.NoError(t, err)
	gInfo, err := client.Enqueue(good, asynq.Retention(time.Hour))
	require.NoError(t, err)
	eventually(t, "valid task completed", func() bool {
		return taskState(insp, tasks.QueueLow, gInfo.ID) == asynq.TaskStateCompleted
	})
	done := logs.FilterMessage("task.done").FilterField(zap.String("task_id", gInfo.ID)).All()
	require.Len(t, done, 1)
	require.Equal(t, "ok", done[0].ContextMap()["outcome"])
	require.NotEmpty(t, logs.FilterMessage("task.archived").FilterField(zap.String("task_id", badInfo.ID)).All())
}

func TestRedisKilledAndRestartedLosesNoPendingTask(t *testing.T) {
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	client := queue.NewClient(opt)
	const n = 200
	ids := make(map[string]bool, n)
	for i := range n {
		id := fmt.Sprintf("probe-%04d", i)
		_, err := client.Enqueue(context.Background(), tasks.SystemProbe{}, asynq.TaskID(id))
		require.NoError(t, err)
		ids[id] = true
	}
	require.NoError(t, client.Close())

	r.Kill() // SIGKILL: no chance to flush anything but the AOF already written
	r.Start()

	insp := asynq.NewInspector(opt)
	defer insp.Close()
	pending, err := insp.ListPendingTasks(tasks.QueueLow, asynq.PageSize(n+10))
	require.NoError(t, err)
	require.Len(t, pending, n)

	// And a worker started afterwards processes every one of them once.
	var mu sync.Mutex
	seen := map[string]int{}
	runServer(t, opt, zap.NewNop(), map[string]asynq.Handler{
		tasks.TypeSystemProbe: asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			mu.Lock()
			seen[id]++
			mu.Unlock()
			return nil
		}),
	})
	eventually(t, "all tasks processed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	mu.Lock()
	defer mu.Unlock()
	for id, c := range seen {
		require.True(t, ids[id], "unexpected task %s", id)
		require.Equal(t, 1, c, "task %s processed %d times", id, c)
	}
}

func TestRetryDelay(t *testing.T) {
	probe := asynq.NewTask(tasks.TypeSystemProbe, nil)
	callTask := asynq.NewTask(tasks.TypeCallOutbound, nil)
	for n := 0; n < 30; n++ {
		d := worker.RetryDelay(n, errors.New("x"), probe)
		full := min(10*time.Second<<min(n, 16), 30*time.Minute)
		require.GreaterOrEqual(t, d, full/2, "n=%d", n)
		require.LessOrEqual(t, d, full, "n=%d", n)
	}
	require.GreaterOrEqual(t, worker.RetryDelay(0, errors.New("x"), callTask), 30*time.Second)

	// A requeued copy continues the backoff of the failures before it.
	cp := asynq.NewTaskWithHeaders(tasks.TypeSystemProbe, nil, map[string]string{worker.HeaderPriorFailures: "3"})
	require.GreaterOrEqual(t, worker.RetryDelay(0, errors.New("x"), cp), 40*time.Second)
	require.LessOrEqual(t, worker.RetryDelay(0, errors.New("x"), cp), 80*time.Second)
	// Nonsense counts never panic or go below the base.
	bad := asynq.NewTaskWithHeaders(tasks.TypeSystemProbe, nil, map[string]string{worker.HeaderPriorFailures: "-9"})
	require.GreaterOrEqual(t, worker.RetryDelay(-1, errors.New("x"), bad), 5*time.Second)
}

func TestOutcome(t *testing.T) {
	require.Equal(t, "ok", worker.Outcome(nil))
	require.Equal(t, "rejected", worker.Outcome(worker.Reject(errors.New("bad"))))
	require.Equal(t, "interrupted", worker.Outcome(fmt.Errorf("x: %w", context.Canceled)))
	require.Equal(t, "error", worker.Outcome(errors.New("boom")))
	require.Equal(t, "requeued", worker.Outcome(&worker.Requeued{ID: "x~1", Cause: errors.New("boom")}))
	require.Equal(t, "rerouted", worker.Outcome(&worker.Requeued{ID: "x", Rerouted: true, Cause: errors.New("wrong queue")}))
	require.True(t, errors.Is(&worker.Requeued{Cause: errors.New("boom")}, asynq.RevokeTask), "asynq drops the original")
	require.True(t, errors.Is(worker.Reject(errors.New("bad")), asynq.SkipRetry))
}
