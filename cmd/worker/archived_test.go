package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

// archiveWithAsynq has a real asynq server give up on every task (as the
// worker does on a bad payload), its error quoting a phone number, and
// returns once all are archived.
func archiveWithAsynq(t *testing.T, r *testenv.Redis, enqueue func(c *asynq.Client)) {
	t.Helper()
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	srv := asynq.NewServer(opt, asynq.Config{Queues: tasks.Queues, LogLevel: asynq.FatalLevel, TaskCheckInterval: 50 * time.Millisecond})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return fmt.Errorf("callee +15551234567 refused (%w)", asynq.SkipRetry)
	})))
	defer srv.Shutdown()
	c, insp := asynqClients(t, r)
	enqueue(c)
	waitFor(t, "every task archived", func() bool {
		for _, q := range tasks.QueueNames {
			info, err := insp.GetQueueInfo(q)
			if err == nil && info.Pending+info.Active > 0 {
				return false
			}
		}
		return true
	})
}

// Archived tasks from the worker's CLI, against a real Redis: listed
// without their payloads (an inline call's holds personal data), run
// again, deleted; a task in another state is never touched.
func TestArchivedTasksListRunDelete(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := map[string]string{"REDIS_URL": r.URL()}
	inline := `{"inline":{"attempt_id":"inline-1","phone":"+15557654321","instructions":"x","variables":{"secret":"PAYLOAD-MARKER"}}}`
	archiveWithAsynq(t, r, func(c *asynq.Client) {
		for _, task := range []struct {
			typ, queue, id, payload string
		}{
			{tasks.TypeCallOutbound, tasks.QueueCalls, "call-a", `{"attempt_id":"att-a"}`},
			{tasks.TypeCallOutbound, tasks.QueueCalls, "inline-1", inline},
			{tasks.TypeCampaignDispatch, tasks.QueueDefault, "dispatch-1", `{"campaign_id":"65f1c0ffee0000000000abcd"}`},
		} {
			_, err := c.Enqueue(asynq.NewTask(task.typ, []byte(task.payload)), asynq.Queue(task.queue), asynq.TaskID(task.id))
			require.NoError(t, err)
		}
	})
	_, insp := asynqClients(t, r)
	// A pending task beside them: run and delete must leave it alone.
	c, _ := asynqClients(t, r)
	_, err := c.Enqueue(asynq.NewTask(tasks.TypeCampaignDispatch, []byte(`{}`)), asynq.Queue(tasks.QueueDefault), asynq.TaskID("pending-1"))
	require.NoError(t, err)

	res := runBin(t, env, "queue", "archived", "--json")
	require.Equal(t, 0, res.code, res.stderr)
	var list []struct {
		Queue, ID, Type, Error string
		AttemptID              string `json:"attempt_id"`
		Inline                 bool
		ArchivedAt             time.Time `json:"archived_at"`
		PayloadBytes           int       `json:"payload_bytes"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &list))
	require.Len(t, list, 3)
	byID := map[string]int{}
	for i, a := range list {
		byID[a.ID] = i
		require.WithinDuration(t, time.Now(), a.ArchivedAt, time.Minute)
		require.Contains(t, a.Error, "refused")
	}
	in := list[byID["inline-1"]]
	require.True(t, in.Inline)
	require.Equal(t, "inline-1", in.AttemptID)
	require.Equal(t, len(inline), in.PayloadBytes)
	require.Equal(t, "att-a", list[byID["call-a"]].AttemptID)
	for _, leak := range []string{"PAYLOAD-MARKER", "7654321", "5551234"} {
		require.NotContains(t, res.stdout, leak, "payloads are never printed, errors are redacted")
	}

	res = runBin(t, env, "queue", "archived", "calls")
	require.Equal(t, 0, res.code, res.stderr)
	require.Regexp(t, `(?m)^calls\s+inline-1\s+call:outbound \(inline\)\s+inline-1\s+\d{4}-`, res.stdout)
	require.NotContains(t, res.stdout, "dispatch-1")
	res = runBin(t, env, "queue", "archived", "--limit", "1")
	require.Contains(t, res.stdout, "1 of 3 archived tasks shown")

	// Run one again: back to pending. A pending task is not archived:
	// refused, untouched.
	res = runBin(t, env, "queue", "run", "default", "dispatch-1")
	require.Equal(t, 0, res.code, res.stderr)
	info, err := insp.GetTaskInfo(tasks.QueueDefault, "dispatch-1")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStatePending, info.State)
	for _, verb := range []string{"run", "delete"} {
		res = runBin(t, env, "queue", verb, "default", "pending-1")
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stderr, "is pending: task is not archived")
	}
	_, err = insp.GetTaskInfo(tasks.QueueDefault, "pending-1")
	require.NoError(t, err)

	// Delete every archived call.
	res = runBin(t, env, "queue", "delete", "calls", "--all")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "2 archived task(s) deleted from calls\n", res.stdout)
	qi, err := insp.GetQueueInfo(tasks.QueueCalls)
	require.NoError(t, err)
	require.Zero(t, qi.Archived)

	// Mistakes.
	res = runBin(t, env, "queue", "delete", "nosuch", "x")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, `no such queue "nosuch"`)
	res = runBin(t, env, "queue", "run", "default", "no-such-id")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "task not found")
	for _, args := range [][]string{{"queue", "run", "default"}, {"queue", "run", "default", "x", "--all"}, {"queue", "frob"}} {
		res = runBin(t, env, args...)
		require.Equal(t, 2, res.code, args)
		require.Contains(t, res.stderr, "Usage: worker queue", args)
	}
}

// asynq's CLI wants host:port and flags, not REDIS_URL: asynq-flags prints
// them, the password only when asked.
func TestAsynqFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REDIS_URL": "rediss://default:s3cr%27et@redis-1.example.com:16379/2"}
	res := runBin(t, env, "queue", "asynq-flags")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "--uri redis-1.example.com:16379 --db 2 --tls_server redis-1.example.com\n", res.stdout)
	require.NotContains(t, res.stdout+res.stderr, "s3cr")
	require.Contains(t, res.stderr, "add --password")

	res = runBin(t, env, "queue", "asynq-flags", "--password")
	require.Equal(t, `--uri redis-1.example.com:16379 --db 2 --tls_server redis-1.example.com --password 's3cr'\''et'`+"\n", res.stdout)

	res = runBin(t, env, "queue", "asynq-flags", "--asynqmon")
	require.Equal(t, "--redis-addr redis-1.example.com:16379 --redis-db 2 --redis-tls redis-1.example.com --max-payload-length 0\n", res.stdout)
	require.False(t, strings.Contains(res.stdout, "s3cr"))
}
