package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// archiveThroughAsynq has a real asynq server reject (archive) or complete
// each task, as the worker would, and waits until every one has settled.
func archiveThroughAsynq(t *testing.T, opt asynq.RedisClientOpt, enqueue func(c *asynq.Client) []string) {
	t.Helper()
	srv := asynq.NewServer(opt, asynq.Config{Queues: tasks.Queues, LogLevel: asynq.FatalLevel, TaskCheckInterval: 50 * time.Millisecond})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		if strings.Contains(string(t.Payload()), `"ok"`) {
			return nil
		}
		return fmt.Errorf("rejected (%w)", asynq.SkipRetry)
	})))
	defer srv.Shutdown()
	c := asynq.NewClient(opt)
	defer c.Close()
	ids := enqueue(c)
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	require.Eventually(t, func() bool {
		for _, q := range tasks.QueueNames {
			info, err := insp.GetQueueInfo(q)
			if err == nil && info.Pending+info.Active > 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "all %d tasks settled", len(ids))
}

func usedMemory(t *testing.T, rc *redis.Client) int64 {
	t.Helper()
	raw, err := rc.Info(context.Background(), "memory").Result()
	require.NoError(t, err)
	return parseInfo(raw).UsedMemoryBytes
}

// Through the real Inspector on a real Redis: an oversized archived payload
// goes at once, an archived inline call after its short age, any archived
// task after the archive's age, the oldest ones while the archive is over
// its size, and a completed inline call (kept by a producer's Retention)
// at once; what is left is under every limit. Each deletion is logged.
func TestJanitorBoundsWhatFailedTasksKeep(t *testing.T) {
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	rc := redis.NewClient(&redis.Options{Addr: opt.Addr})
	defer rc.Close()
	before := usedMemory(t, rc)

	inline := func(id, extra string) []byte {
		return []byte(`{"inline":{"attempt_id":"` + id + `","phone":"+12125550100","instructions":"x","variables":{"dob":"1961-04-09"}}` + extra + `}`)
	}
	archiveThroughAsynq(t, opt, func(c *asynq.Client) []string {
		var ids []string
		add := func(id, typ, queue string, payload []byte, opts ...asynq.Option) {
			_, err := c.Enqueue(asynq.NewTask(typ, payload), append([]asynq.Option{asynq.TaskID(id), asynq.Queue(queue)}, opts...)...)
			require.NoError(t, err)
			ids = append(ids, id)
		}
		for i := range 3 { // three oversized mistakes (the were 10 MB each)
			add(fmt.Sprintf("huge-%d", i), tasks.TypeCampaignDispatch, tasks.QueueDefault,
				[]byte(`{"campaign_id":"`+strings.Repeat("9", 2<<20)+`"}`))
		}
		add("inline-archived", tasks.TypeCallOutbound, tasks.QueueCalls, inline("oneoff-0001", ""))
		add("inline-completed", tasks.TypeCallOutbound, tasks.QueueCalls, inline("oneoff-0002", `,"ok":1`), asynq.Retention(24*time.Hour))
		add("probe-completed", tasks.TypeSystemProbe, tasks.QueueLow, []byte(`{"ok":1}`), asynq.Retention(24*time.Hour))
		for i := range 6 { // 6 × 100 KB in the archive
			add(fmt.Sprintf("mid-%d", i), tasks.TypeCallAnalyze, tasks.QueueAnalysis,
				[]byte(`{"attempt_id":"`+strings.Repeat("a", 100<<10)+`"}`))
		}
		return ids
	})
	full := usedMemory(t, rc)
	require.Greater(t, full-before, int64(6<<20), "the archive holds the three 2 MB payloads")

	insp := asynq.NewInspector(opt)
	defer insp.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	now := time.Now()
	janitor := func(maxBytes int64) *Janitor {
		return NewJanitor(JanitorOptions{
			Inspector: insp, Logger: zap.New(core),
			ArchiveMaxAge: 7 * 24 * time.Hour, ArchiveMaxBytes: maxBytes, InlineArchiveMaxAge: time.Hour,
			Now: func() time.Time { return now },
		})
	}
	sweep := func(j *Janitor) map[string]string {
		t.Helper()
		logs.TakeAll()
		_, err := j.Sweep(context.Background())
		require.NoError(t, err)
		reasons := map[string]string{}
		for _, e := range logs.FilterMessage("queue.task_deleted").All() {
			reasons[e.ContextMap()["task_id"].(string)] = e.ContextMap()["reason"].(string)
		}
		if len(reasons) > 0 {
			require.Len(t, logs.FilterMessage("queue.janitor").All(), 1, "one summary per pass that deleted")
		}
		return reasons
	}
	exists := func(queue, id string) bool {
		_, err := insp.GetTaskInfo(queue, id)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			return false
		}
		require.NoError(t, err)
		return true
	}

	j := janitor(10 << 20)
	require.Equal(t, map[string]string{
		"huge-0": ReasonOversized, "huge-1": ReasonOversized, "huge-2": ReasonOversized,
		"inline-completed": ReasonInline,
	}, sweep(j))
	require.Greater(t, full-usedMemory(t, rc), int64(5<<20), "the memory is given back")
	require.True(t, exists(tasks.QueueCalls, "inline-archived"), "an inline call archived just now stays for its hour")
	require.True(t, exists(tasks.QueueLow, "probe-completed"), "a completed task without personal data is asynq's to expire")

	now = now.Add(time.Hour + time.Minute)
	require.Equal(t, map[string]string{"inline-archived": ReasonInline}, sweep(j))

	// 600 KB of archive against 350 KB: the oldest three go.
	require.Equal(t, map[string]string{"mid-0": ReasonArchiveFull, "mid-1": ReasonArchiveFull, "mid-2": ReasonArchiveFull},
		sweep(janitor(350<<10)))

	now = now.Add(7 * 24 * time.Hour)
	require.Equal(t, map[string]string{"mid-3": ReasonTooOld, "mid-4": ReasonTooOld, "mid-5": ReasonTooOld}, sweep(j))
	for _, q := range tasks.QueueNames {
		info, err := insp.GetQueueInfo(q)
		if err == nil {
			require.Zero(t, info.Archived, q)
		}
	}
	require.Empty(t, sweep(j), "a pass with nothing to do says nothing")
	require.Empty(t, logs.FilterMessage("queue.janitor").All())
}

func TestJanitorStartAndShutdown(t *testing.T) {
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	archiveThroughAsynq(t, opt, func(c *asynq.Client) []string {
		_, err := c.Enqueue(asynq.NewTask(tasks.TypeSystemProbe, []byte(`{"x":"`+strings.Repeat("b", tasks.MaxPayloadBytes)+`"}`)),
			asynq.Queue(tasks.QueueLow), asynq.TaskID("big"))
		require.NoError(t, err)
		return []string{"big"}
	})
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	j := NewJanitor(JanitorOptions{Inspector: insp, Logger: zap.NewNop(), Interval: 20 * time.Millisecond,
		ArchiveMaxAge: time.Hour, ArchiveMaxBytes: 1 << 20, InlineArchiveMaxAge: time.Hour})
	j.Start()
	require.Eventually(t, func() bool {
		_, err := insp.GetTaskInfo(tasks.QueueLow, "big")
		return errors.Is(err, asynq.ErrTaskNotFound)
	}, 10*time.Second, 20*time.Millisecond)
	j.Shutdown()
	j.Shutdown() // idempotent
}
