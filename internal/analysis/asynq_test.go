package analysis

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

// TestRetriedByAsynqThenRecordedAndArchived runs the handler in a real
// asynq server: a 429, a 500 and a schema-violating answer use up the
// task's three tries, the failure lands on the call document on the last
// one, and the task is archived.
func TestRetriedByAsynqThenRecordedAndArchived(t *testing.T) {
	t.Parallel()
	bad := goodAnswer()
	bad["extracted"].(map[string]any)["providers"] = "three"
	e := newTestEnv(t, chatsim.Script{Replies: []chatsim.Reply{
		chatsim.RateLimited(1), chatsim.ServerError(), chatsim.Answer(bad),
	}}, nil)
	e.setSpec(practiceSpec)
	id := e.endedAttempt(nil, call{status: store.CallCompleted, turns: conversation})

	redis := asynq.RedisClientOpt{Addr: testenv.StartRedis(t).Addr()}
	var mu sync.Mutex
	var delays []time.Duration
	failures := make(chan int, 10)
	srv := asynq.NewServer(redis, asynq.Config{
		Concurrency: 1, Queues: tasks.Queues, DelayedTaskCheckInterval: 100 * time.Millisecond,
		// The worker's policy decides the delay; the test records it and
		// waits only a moment, so it runs fast.
		RetryDelayFunc: func(n int, err error, task *asynq.Task) time.Duration {
			mu.Lock()
			defer mu.Unlock()
			delays = append(delays, worker.RetryDelay(n, err, task))
			return 10 * time.Millisecond
		},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, _ *asynq.Task, _ error) {
			n, _ := asynq.GetRetryCount(ctx)
			failures <- n
		}),
		LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeCallAnalyze, e.svc)
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)

	client := asynq.NewClient(redis)
	t.Cleanup(func() { _ = client.Close() })
	task, err := tasks.New(tasks.CallAnalyze{AttemptID: id}, asynq.MaxRetry(2), asynq.TaskID("analyze-"+id))
	require.NoError(t, err)
	_, err = client.EnqueueContext(t.Context(), task)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for want := range 3 {
		select {
		case n := <-failures:
			require.Equal(t, want, n, "tries in order")
		case <-ctx.Done():
			t.Fatalf("try %d never failed: %v", want+1, ctx.Err())
		}
	}

	r := e.result(id)
	require.Equal(t, store.AnalysisFailed, r.Analysis.Status)
	require.Equal(t, 3, r.Analysis.Tries)
	require.Contains(t, r.Analysis.Error, "extracted.providers: must be a number")

	mu.Lock()
	require.Len(t, delays, 2, "two retries, then no more")
	require.Equal(t, time.Second, delays[0], "the 429's Retry-After")
	require.GreaterOrEqual(t, delays[1], 10*time.Second, "then the worker's own backoff")
	mu.Unlock()

	insp := asynq.NewInspector(redis)
	t.Cleanup(func() { _ = insp.Close() })
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := insp.GetTaskInfo(tasks.QueueAnalysis, "analyze-"+id)
		require.NoError(t, err)
		if info.State == asynq.TaskStateArchived {
			require.Contains(t, info.LastErr, "extracted.providers")
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("task is %s, never archived", info.State)
		}
	}
	require.Len(t, e.sim.Requests(), 3)
}
