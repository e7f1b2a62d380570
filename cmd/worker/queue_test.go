package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/openaisim"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// openTestStore opens the database env points at, closed when the test ends.
func openTestStore(t *testing.T, env map[string]string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{URI: env["MONGODB_URI"], Database: env["MONGODB_DATABASE"]})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// endedInlineAttempt writes an inline attempt that rang out unanswered:
// what call:analyze analyses without asking the model anything.
func endedInlineAttempt(t *testing.T, st *store.Store, id string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: id, Attempt: 1, Phone: "+12125550100", Instructions: "x"}))
	claim, err := st.ClaimAttempt(ctx, id, "test", time.Minute)
	require.NoError(t, err)
	require.NoError(t, st.Transition(ctx, claim, store.CallNoAnswer, store.CallFields{}))
}

func logLines(out, msg string) []map[string]any {
	var lines []map[string]any
	for line := range strings.Lines(out) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			lines = append(lines, m)
		}
	}
	return lines
}

// A worker without LiveKit and OpenAI settings serves only what it can
// run: call and analysis tasks stay pending, untouched (retried 0), while
// it runs the rest, and it says so once at start. `queue stats` flags the
// queues no worker serves. A second worker with an OpenAI key then runs
// the analysis; the call still waits for one that can place calls.
func TestBinaryWorkerWithoutSettingsLeavesTheirTasksPending(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	env["METRICS_ADDR"] = ":0" // a bare port: loopback only
	env["ALERT_EVAL_INTERVAL"] = "1s"
	st := openTestStore(t, env)
	endedInlineAttempt(t, st, "attempt-pending-0001")
	enqueue := func(typ, payload, id string) {
		t.Helper()
		res := runBin(t, env, "enqueue", "--type", typ, "--payload", payload, "--task-id", id)
		require.Equal(t, 0, res.code, res.stderr)
	}
	// Both unserved tasks wait before the worker starts, so that its
	// first evaluation counts both (alerts are logged on a change of
	// level only: one evaluated between the two enqueues said 1).
	enqueue(tasks.TypeCallAnalyze, `{"attempt_id":"attempt-pending-0001"}`, "analyze-1")
	enqueue(tasks.TypeCallOutbound, `{"attempt_id":"attempt-pending-0001"}`, "call-1")
	a := startWorker(t, env)
	waitFor(t, "worker started", func() bool { return strings.Contains(a.out.String(), `"msg":"worker.start"`) })
	enqueue(tasks.TypeSystemProbe, `{}`, "probe-1")
	_, insp := asynqClients(t, r)
	waitFor(t, "probe processed", func() bool {
		_, err := insp.GetTaskInfo(tasks.QueueLow, "probe-1")
		return errors.Is(err, asynq.ErrTaskNotFound)
	})
	for _, w := range []struct{ queue, id string }{{tasks.QueueCalls, "call-1"}, {tasks.QueueAnalysis, "analyze-1"}} {
		info, err := insp.GetTaskInfo(w.queue, w.id)
		require.NoError(t, err, w.id)
		require.Equal(t, asynq.TaskStatePending, info.State, w.id)
		require.Equal(t, 0, info.Retried, w.id)
		require.Empty(t, info.LastErr, w.id)
	}
	// The alert counts the waiting tasks (the evaluator runs every second).
	unserved := func() []map[string]any {
		var out []map[string]any
		for _, l := range logLines(a.out.String(), "alert") {
			if l["metric"] == "queue_unserved" {
				out = append(out, l)
			}
		}
		return out
	}
	waitFor(t, "unserved alert", func() bool { return len(unserved()) > 0 })

	out := a.out.String()
	plan := logLines(out, "worker.queues")
	require.Len(t, plan, 1, "said once at start")
	require.Equal(t, "warn", plan[0]["level"])
	require.Equal(t, []any{tasks.QueueDefault, tasks.QueueLow}, plan[0]["serves"])
	require.Equal(t, []any{tasks.QueueCalls, tasks.QueueAnalysis}, plan[0]["not_served"])
	require.Contains(t, plan[0]["reason"], "call:outbound: LIVEKIT_URL, OPENAI_API_KEY not set")
	require.Contains(t, plan[0]["reason"], "call:analyze: OPENAI_API_KEY not set")
	require.Equal(t, 2.0, unserved()[0]["value"])
	listening := logLines(out, "metrics.listening")
	require.Len(t, listening, 1)
	require.Regexp(t, `^127\.0\.0\.1:\d+$`, listening[0]["addr"], "METRICS_ADDR=:0 binds loopback only")

	res := runBin(t, env, "queue", "stats")
	require.Equal(t, 0, res.code, res.stderr)
	require.Regexp(t, `(?m)^calls\s+0\s+1\s`, res.stdout, "calls: no worker, one pending")
	require.Regexp(t, `(?m)^low\s+1\s+0\s`, res.stdout)
	require.Contains(t, res.stdout, "UNSERVED calls: no running worker serves it (call:outbound): 1 tasks wait")
	require.Contains(t, res.stdout, "UNSERVED analysis: no running worker serves it (call:analyze): 1 tasks wait")

	sim, base, err := openaisim.Start("127.0.0.1:0", "sk-queue-key", realtimesim.Script{}, chatsim.Script{})
	require.NoError(t, err)
	defer sim.Close()
	envB := maps.Clone(env)
	envB["OPENAI_API_KEY"], envB["OPENAI_BASE_URL"] = "sk-queue-key", base
	delete(envB, "METRICS_ADDR")
	b := startWorker(t, envB)
	waitFor(t, "analysis done by the second worker", func() bool {
		_, err := insp.GetTaskInfo(tasks.QueueAnalysis, "analyze-1")
		return errors.Is(err, asynq.ErrTaskNotFound)
	})
	an, err := st.GetAnalysisResult(context.Background(), "attempt-pending-0001")
	require.NoError(t, err)
	require.Equal(t, store.AnalysisSkipped, an.Analysis.Status, "an unanswered call has nothing to analyse")
	require.Len(t, logLines(b.out.String(), "analysis.done"), 1)
	info, err := insp.GetTaskInfo(tasks.QueueCalls, "call-1")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State, "no worker can place calls yet")
	require.NoError(t, b.sigterm(t), b.out.String())
	require.NoError(t, a.sigterm(t), a.out.String())
}

// redisDump reads every key of r and every value in it, whatever its type.
func redisDump(t *testing.T, r *testenv.Redis) map[string]string {
	t.Helper()
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	out := map[string]string{}
	iter := rc.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		typ, err := rc.Type(ctx, key).Result()
		require.NoError(t, err)
		var parts []string
		switch typ {
		case "string":
			v, err := rc.Get(ctx, key).Result()
			require.NoError(t, err)
			parts = []string{v}
		case "hash":
			m, err := rc.HGetAll(ctx, key).Result()
			require.NoError(t, err)
			for k, v := range m {
				parts = append(parts, k, v)
			}
		case "list":
			parts, err = rc.LRange(ctx, key, 0, -1).Result()
			require.NoError(t, err)
		case "set":
			parts, err = rc.SMembers(ctx, key).Result()
			require.NoError(t, err)
		case "zset":
			parts, err = rc.ZRange(ctx, key, 0, -1).Result()
			require.NoError(t, err)
		default:
			t.Fatalf("key %s has type %s, which this dump does not read", key, typ)
		}
		out[key] = strings.Join(parts, "\x00")
	}
	require.NoError(t, iter.Err())
	return out
}

// `worker enqueue` of an inline call writes the call to MongoDB and puts
// only its attempt id in Redis: no key or value there holds the phone
// number or a template variable. The same call enqueued again is refused
// as a duplicate; another call under the same attempt id is a conflict.
func TestBinaryEnqueueInlineKeepsPersonalDataOutOfRedis(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	const phone, dob, practice = "+12125550123", "1961-04-09", "Elm Street Dental"
	task := fmt.Sprintf(`{"type":"call:outbound","payload":{"inline":{"attempt_id":"oneoff-pii-0001","phone":%q,
		"instructions":"Confirm the date of birth {{dob}} for {{practice}}.","variables":{"dob":%q,"practice":%q}}}}`, phone, dob, practice)
	file := filepath.Join(t.TempDir(), "task.json")
	require.NoError(t, os.WriteFile(file, []byte(task), 0o600))

	res := runBin(t, env, "enqueue", "--file", file)
	require.Equal(t, 0, res.code, res.stderr)

	dump := redisDump(t, r)
	require.NotEmpty(t, dump)
	var sawTask bool
	for k, v := range dump {
		for _, secret := range []string{phone, phone[1:], "5550123", dob, practice} {
			require.NotContains(t, k, secret)
			require.NotContains(t, v, secret, "key %s", k)
		}
		sawTask = sawTask || strings.Contains(v, `{"attempt_id":"oneoff-pii-0001"}`)
	}
	require.True(t, sawTask, "the task holds the attempt id")
	require.Equal(t, "oneoff-pii-0001\n", res.stdout, "the task id is the attempt id")

	st := openTestStore(t, env)
	c, err := st.GetCall(context.Background(), "oneoff-pii-0001")
	require.NoError(t, err)
	require.Equal(t, phone, c.Phone)
	require.Equal(t, dob, c.Variables["dob"])
	require.Equal(t, store.CallQueued, c.Status)

	res = runBin(t, env, "enqueue", "--file", file)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "already queued")

	other := filepath.Join(t.TempDir(), "other.json")
	require.NoError(t, os.WriteFile(other, []byte(strings.Replace(task, phone, "+12125550111", 1)), 0o600))
	res = runBin(t, env, "enqueue", "--file", other)
	require.Equal(t, 2, res.code)
	require.Contains(t, res.stderr, "conflicts with attempt oneoff-pii-0001")
	require.Contains(t, res.stderr, "[phone]")
	require.NotContains(t, res.stderr, "5550111")
}

// `worker enqueue --file` refuses a key given twice (the last would win:
// another phone number) and anything after the object, without touching
// Redis.
func TestBinaryEnqueueFileIsStrict(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := map[string]string{"REDIS_URL": r.URL()}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"dup-type.json":    `{"type":"system:probe","type":"campaign:dispatch","payload":{}}`,
		"dup-payload.json": `{"type":"system:probe","payload":{"hold":"1s","hold":"2s"}}`,
		"trailing.json":    `{"type":"system:probe","payload":{}} {"type":"system:probe","payload":{}}`,
		"garbage.json":     `{"type":"system:probe","payload":{}} rm -rf`,
	} {
		file := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(file, []byte(body), 0o600))
		res := runBin(t, env, "enqueue", "--file", file)
		require.Equal(t, 2, res.code, name)
		require.Regexp(t, regexp.MustCompile(`key given twice|data after the JSON value`), res.stderr, name)
	}
	res := runBin(t, env, "enqueue", "--type", tasks.TypeSystemProbe, "--payload", `{"hold":"1s","hold":"2s"}`)
	require.Equal(t, 2, res.code)
	require.Contains(t, res.stderr, "hold: key given twice")
	// Over the size the worker accepts from any producer: refused, though
	// an inline call's details would have gone to MongoDB.
	big := filepath.Join(dir, "big.json")
	require.NoError(t, os.WriteFile(big, []byte(fmt.Sprintf(`{"type":"call:outbound","payload":{"inline":{"attempt_id":"oneoff-big-0001",`+
		`"phone":"+12125550100","instructions":"x","greeting":%q}}}`, strings.Repeat("g", tasks.MaxPayloadBytes))), 0o600))
	res = runBin(t, stackEnv(t, r.URL()), "enqueue", "--file", big)
	require.Equal(t, 2, res.code, res.stderr)
	require.Contains(t, res.stderr, "payload too large")
	require.Empty(t, redisDump(t, r), "nothing was enqueued")
}

// Producers' mistakes against the real binary: an unknown task type is
// archived at once with the reason (not retried 25 times); oversized
// payloads are archived, then dropped by the janitor so Redis gets its
// memory back; a task on a queue that is none of ours shows in `queue
// stats` and in the alert.
func TestBinaryCatchesProducersMistakes(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	env["QUEUE_JANITOR_INTERVAL"] = "1s"
	env["ALERT_EVAL_INTERVAL"] = "1s"
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	usedMemory := func() int64 {
		info, err := rc.Info(context.Background(), "memory").Result()
		require.NoError(t, err)
		m := regexp.MustCompile(`used_memory:(\d+)`).FindStringSubmatch(info)
		var n int64
		fmt.Sscan(m[1], &n)
		return n
	}
	before := usedMemory()
	w := startWorker(t, env)
	client, insp := asynqClients(t, r)

	_, err := client.Enqueue(asynq.NewTask("call:inbound", []byte(`{}`)), asynq.Queue(tasks.QueueDefault),
		asynq.MaxRetry(25), asynq.TaskID("unknown-type"))
	require.NoError(t, err)
	for i := range 3 {
		_, err := client.Enqueue(asynq.NewTask(tasks.TypeCampaignDispatch, []byte(`{"campaign_id":"`+strings.Repeat("9", 2<<20)+`"}`)),
			asynq.Queue(tasks.QueueDefault), asynq.TaskID(fmt.Sprintf("huge-%d", i)))
		require.NoError(t, err)
	}
	_, err = client.Enqueue(asynq.NewTask(tasks.TypeSystemProbe, []byte(`{}`)), asynq.Queue("critical"), asynq.TaskID("stray"))
	require.NoError(t, err)

	waitFor(t, "unknown type archived", func() bool {
		info, err := insp.GetTaskInfo(tasks.QueueDefault, "unknown-type")
		return err == nil && info.State == asynq.TaskStateArchived
	})
	info, err := insp.GetTaskInfo(tasks.QueueDefault, "unknown-type")
	require.NoError(t, err)
	require.Equal(t, 0, info.Retried)
	require.Contains(t, info.LastErr, `unknown task type "call:inbound"`)

	waitFor(t, "oversized payloads dropped by the janitor", func() bool {
		return len(logLines(w.out.String(), "queue.task_deleted")) == 3
	})
	for _, l := range logLines(w.out.String(), "queue.task_deleted") {
		require.Equal(t, "payload over the accepted size", l["reason"])
		require.Greater(t, l["payload_bytes"], float64(2<<20))
	}
	require.Len(t, logLines(w.out.String(), "task.archived"), 4, "archived first, with the reason")
	// Redis frees large values in the background (lazyfree): wait for it.
	waitFor(t, "Redis has its memory back", func() bool { return usedMemory()-before < int64(2<<20) })

	waitFor(t, "alert on the stray task", func() bool {
		for _, a := range logLines(w.out.String(), "alert") {
			if a["metric"] == "queue_unserved" {
				return true
			}
		}
		return false
	})
	res := runBin(t, env, "queue", "stats", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var stats []struct {
		Queue   string `json:"queue"`
		Foreign bool   `json:"foreign"`
		Servers int    `json:"servers"`
		Pending int    `json:"pending"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &stats))
	require.Len(t, stats, len(tasks.QueueNames)+1)
	last := stats[len(stats)-1]
	require.Equal(t, "critical", last.Queue)
	require.True(t, last.Foreign)
	require.Equal(t, 0, last.Servers)
	require.Equal(t, 1, last.Pending)
	require.Equal(t, tasks.QueueDefault, stats[1].Queue)
	require.Equal(t, 1, stats[1].Servers, "the running worker serves default")

	res = runBin(t, env, "queue", "stats")
	require.Contains(t, res.stdout, "UNSERVED critical: not one of the worker's queues")
	require.NoError(t, w.sigterm(t), w.out.String())
}

// Production refuses plaintext endpoints at start, naming each variable.
func TestBinaryProductionRefusesPlaintext(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"APP_ENV": "production", "REDIS_URL": "redis://:pw@redis.example.com:6379", "MONGODB_URI": "mongodb://db.example.com/",
		"AWS_REGION": "us-east-1", "S3_BUCKET": "b", "OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://openai.example.com/v1",
	}
	res := runBin(t, env, "run")
	require.Equal(t, 1, res.code)
	for _, v := range []string{"REDIS_URL", "MONGODB_URI", "OPENAI_BASE_URL"} {
		require.Regexp(t, v+`: must use`, res.stderr)
	}
	res = runBin(t, env, "enqueue", "--type", tasks.TypeSystemProbe)
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "REDIS_URL: must use rediss://")
}
