package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/openaisim"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/recording"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/tasks"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

// callEnv is a worker environment that places calls against LiveKit, the
// callee simulator and the OpenAI simulators playing script.
func callEnv(t *testing.T, r *testenv.Redis, script realtimesim.Script) map[string]string {
	t.Helper()
	sim, base, err := openaisim.Start("127.0.0.1:0", "sk-fault-key", script, chatsim.Script{})
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	env := stackEnv(t, r.URL())
	for _, k := range []string{"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"} {
		env[k] = testenv.Get(t, k)
	}
	env["DIALER"] = "sim"
	env["OPENAI_API_KEY"] = "sk-fault-key"
	env["OPENAI_BASE_URL"] = base
	env["CALL_LEASE"] = "6s"
	env["RECORDING_SEGMENT_DURATION"] = "1s"
	return env
}

// A greeting, then a long monologue: the call is live for a while after
// the first turn is stored.
var longCall = realtimesim.Script{Agent: []realtimesim.AgentTurn{
	{Text: "Hello, this is Ava from DocShield.", AudioMS: 1500},
	{Text: "Let me read you the whole appointment policy now.", AudioMS: 60000},
}}

func enqueueInline(t *testing.T, client *asynq.Client, id string) {
	t.Helper()
	tk, err := tasks.New(tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: id, Phone: testenv.DaytimeNumber(t), Instructions: "Read the policy.",
	}}, asynq.TaskID(id))
	require.NoError(t, err)
	_, err = client.Enqueue(tk)
	require.NoError(t, err)
}

func openCallStore(t *testing.T, env map[string]string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{URI: env["MONGODB_URI"], Database: env["MONGODB_DATABASE"]})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// Invariant 2: a worker killed mid-call loses neither the job nor what was
// said; the attempt ends interrupted (never redialled) once another worker
// sees its lease lapse, and the recording segments stored so far remain.
func TestKilledWorkerCallEndsInterruptedWithWhatWasStored(t *testing.T) {
	r := testenv.StartRedis(t)
	env := callEnv(t, r, longCall)
	client, _ := asynqClients(t, r)
	st := openCallStore(t, env)
	ctx := context.Background()

	w := startWorker(t, env)
	enqueueInline(t, client, "kill-call-0001")
	var partial *store.PartialRecording
	waitFor(t, "greeting stored and two recording segments", func() bool {
		c, err := st.GetCall(ctx, "kill-call-0001")
		if err != nil || len(c.Transcript) == 0 {
			return false
		}
		partial, err = st.GetPartialRecording(ctx, "kill-call-0001")
		return err == nil && partial != nil && partial.Segments >= 2
	})
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGKILL))
	<-w.done

	// Another worker takes over: its reaper settles the dead worker's call.
	w2 := startWorker(t, env)
	waitFor(t, "call settled as interrupted", func() bool {
		c, err := st.GetCall(ctx, "kill-call-0001")
		return err == nil && c.Status == store.CallInterrupted
	})
	require.NoError(t, w2.sigterm(t))
	require.Contains(t, w2.out.String(), `"msg":"call.reaped"`)

	c, err := st.GetCall(ctx, "kill-call-0001")
	require.NoError(t, err)
	require.Equal(t, 1, c.Claims, "claimed once, never redialled")
	require.Equal(t, "agent", c.Transcript[0].Role)
	require.Contains(t, c.Transcript[0].Text, "Ava")

	// The stored segments are in the bucket, encrypted.
	partial, err = st.GetPartialRecording(ctx, "kill-call-0001")
	require.NoError(t, err)
	require.NotNil(t, partial)
	s3, err := bucket.New(ctx, bucket.Options{Region: env["AWS_REGION"], AccessKeyID: env["AWS_ACCESS_KEY_ID"],
		SecretAccessKey: env["AWS_SECRET_ACCESS_KEY"], Bucket: env["S3_BUCKET"], Endpoint: env["S3_ENDPOINT"], UsePathStyle: true})
	require.NoError(t, err)
	for i := 0; i < partial.Segments; i++ {
		info, err := s3.Head(ctx, partial.Prefix+recording.SegmentName(i))
		require.NoError(t, err, "segment %d", i)
		require.Equal(t, "AES256", info.SSE)
	}
}

// Invariant 3: SIGTERM mid-call: the call hears a goodbye, ends
// interrupted, and the worker exits 0 inside SHUTDOWN_TIMEOUT.
func TestSIGTERMMidCallEndsInterruptedAndExitsZero(t *testing.T) {
	r := testenv.StartRedis(t)
	env := callEnv(t, r, longCall)
	env["SHUTDOWN_TIMEOUT"] = "20s"
	client, insp := asynqClients(t, r)
	st := openCallStore(t, env)
	ctx := context.Background()

	w := startWorker(t, env)
	enqueueInline(t, client, "term-call-0001")
	waitFor(t, "call in progress", func() bool {
		c, err := st.GetCall(ctx, "term-call-0001")
		return err == nil && c.Status == store.CallInProgress && len(c.Transcript) > 0
	})
	start := time.Now()
	require.NoError(t, w.sigterm(t), w.out.String())
	t.Logf("worker exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	require.NotContains(t, w.out.String(), "worker.shutdown_overrun")

	c, err := st.GetCall(ctx, "term-call-0001")
	require.NoError(t, err)
	require.Equal(t, store.CallInterrupted, c.Status)
	require.NotNil(t, c.Recording, "the recording is finished before exit")
	// Not redialled: the task is done, not back in the queue.
	info, err := insp.GetTaskInfo(tasks.QueueCalls, "term-call-0001")
	if err == nil {
		require.NotEqual(t, asynq.TaskStatePending, info.State)
	}
}
