package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/openaisim"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/recording"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"gopkg.in/hraban/opus.v2"
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
// sees its lease lapse. That worker also joins the recording segments the
// dead one stored into the final object, records it on the call (partial:
// the audio after the last segment died with the worker), and `worker
// recording url` serves it.
func TestKilledWorkerCallEndsInterruptedWithWhatWasStored(t *testing.T) {
	t.Parallel()
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
	s3, err := bucket.New(ctx, bucket.Options{Region: env["AWS_REGION"], AccessKeyID: env["AWS_ACCESS_KEY_ID"],
		SecretAccessKey: env["AWS_SECRET_ACCESS_KEY"], Bucket: env["S3_BUCKET"], Endpoint: env["S3_ENDPOINT"], UsePathStyle: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s3.Delete(context.Background(), partial.FinalKey) })
	// The segments are in the bucket, encrypted; the last note may lag
	// one segment behind what was stored.
	for i := 0; i < partial.Segments; i++ {
		info, err := s3.Head(ctx, partial.Prefix+recording.SegmentName(i))
		require.NoError(t, err, "segment %d", i)
		require.Equal(t, "AES256", info.SSE)
	}
	r0 := runRecording(t, env, "url", "kill-call-0001")
	require.Equal(t, 1, r0.code)
	t.Logf("before the restart: %s", r0.stderr)

	// Another worker takes over: its reaper settles the dead worker's
	// call, and its spool joins the recording.
	w2 := startWorker(t, env)
	waitFor(t, "call settled as interrupted", func() bool {
		c, err := st.GetCall(ctx, "kill-call-0001")
		return err == nil && c.Status == store.CallInterrupted
	})
	var c *store.Call
	waitFor(t, "the dead worker's segments joined into the recording", func() bool {
		c, err = st.GetCall(ctx, "kill-call-0001")
		return err == nil && c.Recording != nil
	})
	require.NoError(t, w2.sigterm(t))
	require.Contains(t, w2.out.String(), `"msg":"call.reaped"`)
	require.Contains(t, w2.out.String(), `"msg":"recording.recovered"`)

	require.Equal(t, 1, c.Claims, "claimed once, never redialled")
	require.Equal(t, "agent", c.Transcript[0].Role)
	require.Contains(t, c.Transcript[0].Text, "Ava")
	require.Equal(t, store.RecordingPartial, c.RecordingStatus, "the audio after the last segment is gone")
	require.Contains(t, c.RecordingError, "stopped mid-call")
	require.Nil(t, c.RecordingPartial, "the note points at the final object only")
	require.Equal(t, partial.FinalKey, c.Recording.Key)
	require.GreaterOrEqual(t, c.Recording.DurationMS, partial.DurationMS, "every noted segment is in it")
	for i := 0; i < partial.Segments; i++ {
		_, err := s3.Head(ctx, partial.Prefix+recording.SegmentName(i))
		require.ErrorIs(t, err, bucket.ErrNotFound, "segment %d deleted once joined", i)
	}

	// The operator's link serves the joined recording: one Ogg Opus
	// stream, as long as the call document says.
	out := runRecording(t, env, "url", "kill-call-0001")
	require.Equal(t, 0, out.code, out.stderr)
	require.Contains(t, out.stderr, "partial recording")
	resp, err := http.Get(strings.TrimSpace(out.stdout))
	require.NoError(t, err)
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, c.Recording.Bytes, int64(len(data)))
	require.InDelta(t, c.Recording.DurationMS, decodedDuration(t, data).Milliseconds(), 25)
}

// decodedDuration decodes an Ogg Opus stream with libopusfile (which
// checks every page) and returns its length.
func decodedDuration(t *testing.T, data []byte) time.Duration {
	t.Helper()
	s, err := opus.NewStream(bytes.NewReader(data))
	require.NoError(t, err, "libopusfile refuses the stream")
	defer s.Close()
	buf := make([]int16, 2*5760)
	var samples int
	for range 1 << 22 {
		n, err := s.Read(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		samples += n
	}
	return time.Duration(samples) * time.Second / 48000
}

// Invariant 3: SIGTERM mid-call: the call hears a goodbye, ends
// interrupted, and the worker exits 0 inside SHUTDOWN_TIMEOUT.
func TestSIGTERMMidCallEndsInterruptedAndExitsZero(t *testing.T) {
	t.Parallel()
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
	require.Equal(t, store.RecordingComplete, c.RecordingStatus)
	// Not redialled: the task is done, not back in the queue.
	info, err := insp.GetTaskInfo(tasks.QueueCalls, "term-call-0001")
	if err == nil {
		require.NotEqual(t, asynq.TaskStatePending, info.State)
	}
}
