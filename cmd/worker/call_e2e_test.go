package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/openaisim"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/docshield/voice-worker/internal/telephony/sipphone/siptest"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

// The real binary places an inline call end to end over the production
// phone leg, with the scenario `make dev` uses: DIALER=sip through
// LiveKit's SIP service and a trunk to make dev's SIP phone ("talk": the
// front desk confirming, a line per turn), and the OpenAI Realtime
// simulator answering it. The call document must end completed, with a
// short conversation in the transcript, the end_call tool call and an
// encrypted recording; the phone heard the agent and was hung up on.
func TestBinaryPlacesACallEndToEnd(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../scripts/dev/agent.json")
	require.NoError(t, err)
	var script realtimesim.Script
	require.NoError(t, json.Unmarshal(b, &script))
	script.Paced = false // the test need not wait for real time
	b, err = os.ReadFile("../../scripts/dev/analysis.json")
	require.NoError(t, err)
	var answers chatsim.Script
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&answers))
	var want struct{ Summary, Disposition string }
	require.NoError(t, json.Unmarshal([]byte(answers.Then.Content), &want))
	sim, base, err := openaisim.Start("127.0.0.1:0", "sk-e2e-key", script, answers)
	require.NoError(t, err)
	defer sim.Close()

	talk, err := sipphone.Named(context.Background(), "talk")
	require.NoError(t, err)
	line := siptest.Start(t, sipphone.Config{Default: talk})

	r := testenv.StartRedis(t)
	env := stackEnv(t, r.URL())
	for _, k := range []string{"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"} {
		env[k] = testenv.Get(t, k)
	}
	env["DIALER"] = "sip"
	env["LIVEKIT_SIP_TRUNK_ID"] = line.Trunk.ID
	env["OPENAI_API_KEY"] = "sk-e2e-key"
	env["OPENAI_BASE_URL"] = base
	w := startWorker(t, env)

	client, insp := asynqClients(t, r)
	phone := testenv.DaytimeNumber(t) // calls are placed only inside calling hours where the callee is
	p := tasks.CallOutbound{Inline: &tasks.InlineCall{
		AttemptID: "e2e-call-0001", Phone: phone,
		Instructions: "Confirm the appointment at {{practice}}.", Variables: map[string]string{"practice": "Elm Street Dental"},
	}}
	tk, err := tasks.New(p, asynq.TaskID("e2e-call-0001"), asynq.Retention(time.Hour))
	require.NoError(t, err)
	_, err = client.Enqueue(tk)
	require.NoError(t, err)
	waitFor(t, "call task completed", func() bool {
		info, err := insp.GetTaskInfo(tasks.QueueCalls, "e2e-call-0001")
		return err == nil && info.State == asynq.TaskStateCompleted
	})
	// The runner enqueued call:analyze; the worker analyses the call
	// through chat completions (chatsim answers as make dev's does).
	waitFor(t, "call analysed", func() bool {
		_, err := insp.GetTaskInfo(tasks.QueueAnalysis, "analyze-e2e-call-0001")
		return errors.Is(err, asynq.ErrTaskNotFound) // deleted once processed
	})
	require.NoError(t, w.sigterm(t), w.out.String())

	st, err := store.Open(context.Background(), store.Options{URI: env["MONGODB_URI"], Database: env["MONGODB_DATABASE"]})
	require.NoError(t, err)
	defer st.Close(context.Background())
	c, err := st.GetCall(context.Background(), "e2e-call-0001")
	require.NoError(t, err)
	require.Equal(t, store.CallCompleted, c.Status, "output:\n%s", w.out.String())
	require.Equal(t, []string{"agent", "callee", "agent", "callee", "agent"}, roles(c.Transcript), "%+v", c.Transcript)
	require.Contains(t, c.Transcript[0].Text, "DocShield")
	require.Equal(t, sipphone.TalkLines[1], c.Transcript[3].Text, "the front desk confirmed")
	require.NotEmpty(t, c.SIPCallID)
	require.NotEmpty(t, c.ToolCalls)
	require.Equal(t, "end_call", c.ToolCalls[0].Name)
	pc, err := line.Phone.WaitCall(context.Background(), phone)
	require.NoError(t, err)
	<-pc.Done()
	rec := pc.Record()
	require.Equal(t, sipphone.AuthOK, rec.Auth)
	require.Equal(t, sipphone.PartyCaller, rec.HungUpBy, "the worker hung up after its goodbye")
	require.Len(t, pc.Heard().Spans(200*time.Millisecond), 3, "the phone heard the agent's three turns")
	require.NotNil(t, c.Recording, "output:\n%s", w.out.String())
	require.Equal(t, env["S3_BUCKET"], c.Recording.Bucket)
	require.Greater(t, c.Recording.Bytes, int64(0))
	require.NotContains(t, w.out.String(), phone, "phone numbers are masked in logs")

	an, err := st.GetAnalysisResult(context.Background(), "e2e-call-0001")
	require.NoError(t, err)
	require.Equal(t, want.Summary, an.Summary, "make dev's analysis, as the worker validated and stored it")
	require.Equal(t, want.Disposition, an.Analysis.Disposition)

	// What an operator sees: the whole document, phone masked.
	res := runBin(t, env, "call", "show", "e2e-call-0001")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, `"status": "completed"`)
	require.Contains(t, res.stdout, `"+`+strings.Repeat("*", len(phone)-5)+phone[len(phone)-4:]+`"`)
	require.NotContains(t, res.stdout, phone[1:])
}

func roles(turns []store.Turn) []string {
	out := make([]string, len(turns))
	for i, tn := range turns {
		out[i] = tn.Role
	}
	return out
}
