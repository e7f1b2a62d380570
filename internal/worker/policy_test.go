package worker_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// stack is a private Redis with a client and an inspector on it.
type stack struct {
	opt    asynq.RedisClientOpt
	client *asynq.Client
	insp   *asynq.Inspector
}

func newStack(t *testing.T) stack {
	t.Helper()
	opt := asynq.RedisClientOpt{Addr: testenv.StartRedis(t).Addr()}
	s := stack{opt: opt, client: asynq.NewClient(opt), insp: asynq.NewInspector(opt)}
	t.Cleanup(func() {
		_ = s.client.Close()
		_ = s.insp.Close()
	})
	return s
}

func newServer(opt asynq.RedisClientOpt, log *zap.Logger) *worker.Server {
	return worker.New(worker.Options{Redis: opt, Concurrency: 2, ShutdownTimeout: 5 * time.Second, Logger: log})
}

// handlingAll is a server with h registered for every task type.
func handlingAll(opt asynq.RedisClientOpt, log *zap.Logger, h asynq.Handler) *worker.Server {
	srv := newServer(opt, log)
	for _, typ := range tasks.Types {
		srv.Handle(typ, h)
	}
	return srv
}

// counter is a handler that counts its runs and returns err.
type counter struct {
	runs atomic.Int32
	err  error
}

func (c *counter) ProcessTask(context.Context, *asynq.Task) error {
	c.runs.Add(1)
	return c.err
}

func (s stack) info(t *testing.T, queue, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := s.insp.GetTaskInfo(queue, id)
	require.NoError(t, err)
	return info
}

// A worker that cannot run call:analyze (no OpenAI key) does not serve its
// queue: the task stays pending and untouched while the worker serves the
// rest, and says so once at start. A second worker that can run it does.
func TestWorkerServesOnlyTheQueuesItCanHandle(t *testing.T) {
	s := newStack(t)
	core, logs := observer.New(zapcore.DebugLevel)
	analyze := &counter{}
	probe := &counter{}

	a := handlingAll(s.opt, zap.New(core).With(zap.String("worker", "a")), probe)
	a.Unavailable(tasks.TypeCallAnalyze, "OPENAI_API_KEY is not set")
	require.Equal(t, []string{tasks.QueueCalls, tasks.QueueDefault, tasks.QueueLow}, a.Serves())
	testenv.Run(t, a.Run)

	an, err := tasks.New(tasks.CallAnalyze{AttemptID: "attempt-0001"}, asynq.TaskID("analyze-1"), asynq.MaxRetry(8))
	require.NoError(t, err)
	_, err = s.client.Enqueue(an)
	require.NoError(t, err)
	pr, err := tasks.New(tasks.SystemProbe{}, asynq.TaskID("probe-1"), asynq.Retention(time.Hour))
	require.NoError(t, err)
	_, err = s.client.Enqueue(pr)
	require.NoError(t, err)
	eventually(t, "probe completed", func() bool {
		return taskState(s.insp, tasks.QueueLow, "probe-1") == asynq.TaskStateCompleted
	})
	// The probe was enqueued after the analysis and is done: the analysis
	// was never offered to this worker, which does not poll its queue.
	info := s.info(t, tasks.QueueAnalysis, "analyze-1")
	require.Equal(t, asynq.TaskStatePending, info.State)
	require.Equal(t, 0, info.Retried)
	require.Empty(t, info.LastErr)
	servers, err := s.insp.Servers()
	require.NoError(t, err)
	require.Len(t, servers, 1)
	require.NotContains(t, servers[0].Queues, tasks.QueueAnalysis)

	plan := logs.FilterMessage("worker.queues").All()
	require.Len(t, plan, 1, "said once")
	require.Equal(t, zapcore.WarnLevel, plan[0].Level)
	require.Equal(t, []any{tasks.QueueAnalysis}, plan[0].ContextMap()["not_served"])
	require.Contains(t, plan[0].ContextMap()["reason"], "call:analyze: OPENAI_API_KEY is not set")

	b := newServer(s.opt, zap.New(core).With(zap.String("worker", "b")))
	b.Handle(tasks.TypeCallAnalyze, analyze)
	require.Equal(t, []string{tasks.QueueAnalysis}, b.Serves())
	testenv.Run(t, b.Run)
	eventually(t, "analysis run by the worker that can", func() bool { return analyze.runs.Load() == 1 })
	eventually(t, "analysis done", func() bool {
		_, err = s.insp.GetTaskInfo(tasks.QueueAnalysis, "analyze-1")
		return errors.Is(err, asynq.ErrTaskNotFound)
	})
}

// Producers' mistakes are archived at once with the reason: an unknown
// type (not retried 25 times), an oversized payload, a key given twice.
func TestProducerMistakesArchivedAtOnce(t *testing.T) {
	s := newStack(t)
	core, logs := observer.New(zapcore.DebugLevel)
	h := &counter{}
	srv := handlingAll(s.opt, zap.New(core), h)
	testenv.Run(t, srv.Run)

	cases := []struct {
		id, typ, queue, payload, reason string
	}{
		{"unknown", "call:inbound", tasks.QueueDefault, `{}`, `unknown task type "call:inbound"`},
		{"big", tasks.TypeCampaignDispatch, tasks.QueueDefault,
			`{"campaign_id":"65f1c0ffee0000000000abcd","x":"` + strings.Repeat("a", tasks.MaxPayloadBytes) + `"}`, "payload too large"},
		{"twice", tasks.TypeCallOutbound, tasks.QueueCalls,
			`{"inline":{"attempt_id":"oneoff-0001","phone":"+12125550100","phone":"+12125550199","instructions":"x"}}`,
			"inline.phone: key given twice"},
	}
	for _, c := range cases {
		_, err := s.client.Enqueue(asynq.NewTask(c.typ, []byte(c.payload)), asynq.Queue(c.queue), asynq.MaxRetry(25), asynq.TaskID(c.id))
		require.NoError(t, err)
	}
	for _, c := range cases {
		eventually(t, c.id+" archived", func() bool { return taskState(s.insp, c.queue, c.id) == asynq.TaskStateArchived })
		info := s.info(t, c.queue, c.id)
		require.Equal(t, 0, info.Retried, c.id)
		require.Contains(t, info.LastErr, c.reason, c.id)
		require.Len(t, logs.FilterMessage("task.archived").FilterField(zap.String("task_id", c.id)).All(), 1)
	}
	require.Zero(t, h.runs.Load(), "no handler ran")
}

// Whatever MaxRetry a producer set, a task gets its type's retry budget:
// 2^31-1 is cut to the budget, and -5 (which asynq archives on the first
// transient error) is given the budget through a requeued copy.
func TestRetryBudgetIsTheTypesWhateverTheProducerSet(t *testing.T) {
	s := newStack(t)
	core, logs := observer.New(zapcore.DebugLevel)
	fail := &counter{err: errors.New("LiveKit unreachable")}
	srv := handlingAll(s.opt, zap.New(core), fail)
	testenv.Run(t, srv.Run)
	budget := tasks.MaxRetry(tasks.TypeCallOutbound)
	require.Equal(t, 3, budget)

	// runUntilArchived brings each retry forward rather than waiting out
	// the backoff, following the task through its copies, and returns the
	// ids it ran under.
	runUntilArchived := func(id string) []string {
		ids := []string{id}
		for range 10 {
			var info *asynq.TaskInfo
			eventually(t, id+" failed", func() bool {
				for _, cand := range []string{id, nextCopy(id)} {
					if i, err := s.insp.GetTaskInfo(tasks.QueueCalls, cand); err == nil && i.State != asynq.TaskStatePending && i.State != asynq.TaskStateActive {
						info = i
						return true
					}
				}
				return false
			})
			if info.ID != id {
				id = info.ID
				ids = append(ids, id)
			}
			if info.State == asynq.TaskStateArchived {
				return ids
			}
			require.NoError(t, s.insp.RunTask(tasks.QueueCalls, id))
		}
		t.Fatalf("%s never archived", id)
		return nil
	}

	payload := []byte(`{"attempt_id":"attempt-0001"}`)
	_, err := s.client.Enqueue(asynq.NewTask(tasks.TypeCallOutbound, payload), asynq.Queue(tasks.QueueCalls),
		asynq.MaxRetry(math.MaxInt32), asynq.TaskID("forever"))
	require.NoError(t, err)
	require.Equal(t, []string{"forever"}, runUntilArchived("forever"))
	info := s.info(t, tasks.QueueCalls, "forever")
	require.Equal(t, budget, info.Retried, "archived after the budget, not 2^31-1 retries")
	require.Contains(t, info.LastErr, "retry budget spent: 3 of 3")
	require.Contains(t, info.LastErr, "LiveKit unreachable")
	require.Equal(t, int32(budget+1), fail.runs.Load())

	fail.runs.Store(0)
	_, err = s.client.Enqueue(asynq.NewTask(tasks.TypeCallOutbound, payload), asynq.Queue(tasks.QueueCalls),
		asynq.MaxRetry(-5), asynq.TaskID("negative"))
	require.NoError(t, err)
	ids := runUntilArchived("negative")
	require.Equal(t, []string{"negative", "negative~1"}, ids, "one copy carries the rest of the budget")
	_, err = s.insp.GetTaskInfo(tasks.QueueCalls, "negative")
	require.ErrorIs(t, err, asynq.ErrTaskNotFound, "the original is dropped, not archived")
	info = s.info(t, tasks.QueueCalls, "negative~1")
	require.Equal(t, "1", info.Headers[worker.HeaderPriorFailures])
	require.Equal(t, "negative", info.Headers[worker.HeaderOrigin])
	require.Contains(t, info.LastErr, "retry budget spent: 3 of 3")
	require.Equal(t, int32(budget+1), fail.runs.Load(), "the budget, no more and no less")
	requeued := logs.FilterMessage("task.requeued").All()
	require.Len(t, requeued, 1)
	require.Equal(t, "negative~1", requeued[0].ContextMap()["new_task_id"])
}

// nextCopy is the id a requeue gives the copy of id.
func nextCopy(id string) string {
	origin, gen, _ := strings.Cut(id, "~")
	n, _ := strconv.Atoi(gen)
	return origin + "~" + strconv.Itoa(n+1)
}

// A task on another of our queues than its type's (call:analyze on
// default, as the README documented before analysis had a queue) is moved,
// with its id, to its own queue and runs there.
func TestMisroutedTaskMovesToItsQueue(t *testing.T) {
	s := newStack(t)
	core, logs := observer.New(zapcore.DebugLevel)
	analyze := &counter{}
	srv := handlingAll(s.opt, zap.New(core), &counter{})
	srv.Handle(tasks.TypeCallAnalyze, analyze)
	testenv.Run(t, srv.Run)

	_, err := s.client.Enqueue(asynq.NewTask(tasks.TypeCallAnalyze, []byte(`{"attempt_id":"attempt-0001"}`)),
		asynq.Queue(tasks.QueueDefault), asynq.TaskID("analyze-attempt-0001"), asynq.MaxRetry(8))
	require.NoError(t, err)
	eventually(t, "analysis ran on its queue", func() bool { return analyze.runs.Load() == 1 })
	moved := logs.FilterMessage("task.rerouted").All()
	require.Len(t, moved, 1)
	require.Equal(t, tasks.QueueAnalysis, moved[0].ContextMap()["new_queue"])
	require.Equal(t, "analyze-attempt-0001", moved[0].ContextMap()["new_task_id"])
	ran := logs.FilterMessage("task.done").FilterField(zap.String("queue", tasks.QueueAnalysis)).All()
	require.Len(t, ran, 1)
	require.Equal(t, "analyze-attempt-0001", ran[0].ContextMap()["task_id"])
}

// A task interrupted by shutdown (not a failure) on what asynq counts as
// its last attempt is requeued with its budget intact, not archived.
func TestInterruptedLastAttemptIsRequeuedNotArchived(t *testing.T) {
	s := newStack(t)
	srv := handlingAll(s.opt, zap.NewNop(), &counter{err: fmt.Errorf("call ended early: %w", context.Canceled)})
	testenv.Run(t, srv.Run)
	_, err := s.client.Enqueue(asynq.NewTask(tasks.TypeCampaignDispatch, []byte(`{"campaign_id":"65f1c0ffee0000000000abcd"}`)),
		asynq.Queue(tasks.QueueDefault), asynq.MaxRetry(0), asynq.TaskID("dispatch-1"))
	require.NoError(t, err)
	eventually(t, "copy queued", func() bool { return taskState(s.insp, tasks.QueueDefault, "dispatch-1~1") == asynq.TaskStateScheduled })
	info := s.info(t, tasks.QueueDefault, "dispatch-1~1")
	require.Equal(t, tasks.MaxRetry(tasks.TypeCampaignDispatch), info.MaxRetry, "an interruption spends nothing")
	require.Equal(t, "0", info.Headers[worker.HeaderPriorFailures])
	q, err := s.insp.GetQueueInfo(tasks.QueueDefault)
	require.NoError(t, err)
	require.Zero(t, q.Archived)
}
