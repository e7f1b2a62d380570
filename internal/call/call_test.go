package call_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/agent"
	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/docshield/voice-worker/tasks"
	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Every scenario here runs over the production phone leg (see
// sip_helpers_test.go): the SIP dialer, LiveKit's SIP service, a trunk
// with digest authentication, and a SIP phone speaking G.711.

// A whole conversation: the agent greets, the callee answers, the agent
// says goodbye and ends the call with end_call. The call document holds
// every step, the transcript with offsets, the tool call, the latency of
// the reply and the usage; the room is gone and the analysis enqueued. The
// phone was dialed as asked (number, caller ID, the trunk's credentials),
// heard both agent turns as the call played them, and got BYE right after.
func TestConversationEndsWithEndCall(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{
			Agent: []realtimesim.AgentTurn{
				{Text: "Hello, this is Ava from DocShield, calling about a records request.", AudioMS: 1200},
				{Text: "Thank you, goodbye.", AudioMS: 800,
					Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: toolArgs(`{"reason":"records confirmed"}`)}},
			},
			Callee: []string{"Yes, we sent them yesterday."},
		},
		phone: sipphone.Script{AgentQuiet: 400 * time.Millisecond, Steps: []sipphone.Step{
			sipphone.WaitForAgentTurn(), sipphone.Say(phoneTone(700 * time.Millisecond)), sipphone.WaitForAgentTurn(),
		}},
		lease: 900 * time.Millisecond, // renewed every 300 ms while the call is live
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)

	require.Equal(t, "the agent ended the call: records confirmed", d.EndReason)
	require.True(t, c.LeaseExpiresAt.After(c.AnsweredAt.Add(900*time.Millisecond)), "the lease was renewed during the call")
	require.Empty(t, c.Error)
	require.False(t, c.DialingAt.IsZero())
	require.False(t, c.RingingAt.IsZero())
	require.False(t, c.AnsweredAt.IsZero())
	require.True(t, !c.AnsweredAt.Before(c.RingingAt) && !c.EndedAt.Before(c.AnsweredAt))
	require.Equal(t, e.room, c.Room)
	require.NotEmpty(t, c.SIPCallID, "LiveKit's SIP call id")

	require.Equal(t, []string{"agent", "callee", "agent"}, roles(c.Transcript), "%+v", c.Transcript)
	require.Equal(t, "Hello, this is Ava from DocShield, calling about a records request.", c.Transcript[0].Text)
	require.Equal(t, "Yes, we sent them yesterday.", c.Transcript[1].Text)
	require.Equal(t, "Thank you, goodbye.", c.Transcript[2].Text)
	requireOrdered(t, c.Transcript)
	require.GreaterOrEqual(t, c.Transcript[0].EndMS-c.Transcript[0].StartMS, int64(1000), "the greeting played for its 1.2 s")

	require.Equal(t, []string{"end_call"}, toolNames(c.ToolCalls))
	require.JSONEq(t, `{"reason":"records confirmed"}`, c.ToolCalls[0].Arguments)
	require.Len(t, c.LatenciesMS, 1, "one reply to the callee")
	require.Positive(t, c.LatenciesMS[0])
	require.NotNil(t, c.Usage)
	require.Positive(t, c.Usage.OutputAudioTokens)
	require.Positive(t, c.Usage.InputTokens)
	require.Greater(t, c.Usage.AgentAudioMS, int64(1500), "both turns played")
	require.Greater(t, c.Usage.CalleeAudioMS, int64(700))

	// The recording got both sides, and the agent side as it was played.
	require.NotNil(t, c.Recording)
	require.Equal(t, "recordings/test.opus", c.Recording.Key)
	require.False(t, e.recorder.afterClosed, "nothing reached the recorder after Close")
	require.False(t, e.recorder.agentOutOfOrder)
	// The agent's packets hold what was played, to a frame at each end of
	// its two turns.
	require.InDelta(t, c.Usage.AgentAudioMS, e.recorder.agentMS(), 80)
	require.Positive(t, e.recorder.calleePackets)

	// The model was configured with the rendered prompt and every tool.
	updates := e.sim.Log().EventsOfType("session.update")
	require.Len(t, updates, 1)
	var su struct {
		Session struct {
			Instructions string `json:"instructions"`
			Tools        []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"session"`
	}
	require.NoError(t, json.Unmarshal(updates[0].Raw, &su))
	require.Contains(t, su.Session.Instructions, "calling Elm Dental on behalf of DocShield")
	require.NotContains(t, su.Session.Instructions, "{{")
	require.Len(t, su.Session.Tools, len(agent.AllTools))

	// The phone was dialed as asked, over the trunk, and hung up on at once.
	rec := e.requireAgentHangUpReachedThePhone(t, "end_call")
	require.Equal(t, calleePhone, rec.Number)
	require.Equal(t, callerID, rec.From, "the caller ID")
	require.Equal(t, sipphone.AuthOK, rec.Auth, "the trunk answered the digest challenge")
	require.Equal(t, 200, rec.Status)
	require.Len(t, agentSpeech(e.phoneCall(t)), 2, "the phone heard the greeting and the goodbye")
}

// What the phone heard of the agent, against the call's recording of what
// it played: each utterance whole, a steady network hop later, at the same
// level through Opus and G.711, without clipping or dropouts. Four turns
// of a conversation, so a backlog building up in the agent's audio (a
// publisher falling behind on a busy host) would show as a growing delay.
func TestAgentAudioAsThePhoneHeardIt(t *testing.T) {
	t.Parallel()
	line := []sipphone.Step{sipphone.WaitForAgentTurn(), sipphone.Say(phoneTone(500 * time.Millisecond))}
	sc := scenario{
		model: realtimesim.Script{
			Agent: []realtimesim.AgentTurn{
				{Text: "Hello, this is Ava from DocShield, calling about a records request.", AudioMS: 1500},
				{Text: "We have not received the records for the March visit yet.", AudioMS: 1800},
				{Text: "Could you send them by fax today?", AudioMS: 1200},
				{Text: "Thank you, goodbye.", AudioMS: 800,
					Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: toolArgs(`{"reason":"fax promised"}`)}},
			},
			Callee: []string{"Hello?", "Let me check.", "Yes, we can."},
		},
		phone: sipphone.Script{AgentQuiet: 400 * time.Millisecond, Steps: append(append(append(append([]sipphone.Step{},
			line...), line...), line...), sipphone.WaitForAgentTurn())},
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	e.requireEnded(t, c, store.CallCompleted)
	require.Len(t, c.Transcript, 7, "%+v", c.Transcript)
	pc := e.phoneCall(t)
	ended(t, pc)
	a := checkAgentAudio(t, pc, e.recorder)
	require.Len(t, a.heard, 4)
	require.Equal(t, sipphone.PCMU, pc.Record().Codec)
}

func waitDone(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatal("timed out")
	}
}

// Barge-in: the callee talks over a long greeting. The agent's queued audio
// is dropped at once, the model's item is truncated where the callee
// stopped hearing it, and the callee hears nothing of the rest.
func TestBargeInCutsTheAgentWhereTheCalleeStoppedHearing(t *testing.T) {
	t.Parallel()
	testBargeIn(t, call.LocalVAD{}, "callee")
}

// The same with the worker's own detector, set to react well before the
// model's (20 ms of speech against the simulator's 200 ms).
func TestLocalVADCutsTheAgentBeforeTheModelHears(t *testing.T) {
	t.Parallel()
	testBargeIn(t, call.LocalVAD{ThresholdRMS: 1000, MinSpeech: 20 * time.Millisecond}, "callee_local")
}

func testBargeIn(t *testing.T, vad call.LocalVAD, cause string) {
	sc := scenario{
		model: realtimesim.Script{
			Agent: []realtimesim.AgentTurn{
				{Text: "Hello, this is Ava from DocShield, and I am calling about a records request for a patient.", AudioMS: 6000},
				{Text: "Of course, goodbye.", AudioMS: 600,
					Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: toolArgs(`{"reason":"call back later"}`)}},
			},
			Callee: []string{"Sorry, can you call back later?"},
			VAD:    realtimesim.VAD{MinSpeechMS: 200},
		},
		phone: sipphone.Script{AgentQuiet: 400 * time.Millisecond, Steps: []sipphone.Step{
			sipphone.WaitForAgentSpeech(), sipphone.Pause(500 * time.Millisecond),
			sipphone.Say(phoneTone(700 * time.Millisecond)), sipphone.WaitForAgentTurn(),
		}},
		localVAD: vad,
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)

	truncates := e.sim.Log().Truncates
	require.Len(t, truncates, 1)
	require.Len(t, d.Interruptions, 1)
	in := d.Interruptions[0]
	require.Equal(t, cause, in.Cause)
	require.Equal(t, truncates[0].ItemID, in.ItemID)
	require.Equal(t, truncates[0].AudioEndMS, in.PlayedMS, "the model was told what was played")
	require.Positive(t, in.PlayedMS)
	require.Less(t, in.PlayedMS, 5000)
	require.Greater(t, in.DroppedMS, 500, "queued audio was dropped")
	require.InDelta(t, 6000, in.PlayedMS+in.DroppedMS, 100, "played and dropped make up the greeting")

	require.Equal(t, []string{"agent", "callee", "agent"}, roles(c.Transcript), "%+v", c.Transcript)
	require.True(t, strings.HasSuffix(c.Transcript[0].Text, "[interrupted]"), c.Transcript[0].Text)
	require.Less(t, c.Transcript[0].EndMS-c.Transcript[0].StartMS, int64(5000))
	requireOrdered(t, c.Transcript)
	require.Equal(t, "Of course, goodbye.", c.Transcript[2].Text)
	require.InDelta(t, c.Usage.AgentAudioMS, e.recorder.agentMS(), 80, "the recording has what was played")
	require.Less(t, c.Usage.AgentAudioMS, int64(in.PlayedMS+600+100), "the greeting's dropped part never played")

	// What the phone heard of the greeting ends with what was played.
	pc := e.phoneCall(t)
	ended(t, pc)
	heard := agentSpeech(pc)
	require.Len(t, heard, 2, "the cut greeting and the goodbye")
	require.Less(t, heard[0], time.Duration(in.PlayedMS)*time.Millisecond+time.Second,
		"nothing beyond what was played (plus the network's tail) was heard")
	said := pc.Record().Said
	require.Len(t, said, 1)
	t.Logf("measured: the agent went quiet at the phone %s after the callee started speaking (%s)",
		pc.Heard().Spans(speechHangover)[0].End.Sub(said[0].Start).Round(time.Millisecond), cause)
}

// The callee hangs up in the middle of the agent's sentence (BYE from the
// phone): the call ends at once as completed, with the agent's cut turn in
// the transcript.
func TestCalleeHangsUpMidSentence(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{Agent: []realtimesim.AgentTurn{
			{Text: "Hello, this is Ava from DocShield, and I am calling about a records request.", AudioMS: 5000},
		}},
		phone: sipphone.HangUpMidSentence(400 * time.Millisecond),
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)
	require.Equal(t, "callee hung up", d.EndReason)
	require.Len(t, c.Transcript, 1)
	require.Equal(t, "agent", c.Transcript[0].Role)
	require.True(t, strings.HasSuffix(c.Transcript[0].Text, "[interrupted]"), c.Transcript[0].Text)
	require.Less(t, c.Usage.AgentAudioMS, int64(4500), "the call ended before the sentence did")
	log, err := e.sim.WaitFor(testCtx(t), func(l realtimesim.Log) bool { return l.Disconnects == 1 })
	require.NoError(t, err, "the model session was closed")
	require.Equal(t, 1, log.Connections)

	rec := ended(t, e.phoneCall(t))
	require.Equal(t, sipphone.PartyPhone, rec.HungUpBy)
	took := e.clock.hangupAt().Sub(firstEvent(t, rec, true, sip.BYE))
	t.Logf("measured: the callee's BYE ended the call %s after the phone sent it", took.Round(time.Millisecond))
	// Usually LiveKit tells the agent the callee left (well under
	// hangUpReached). A busy SIP service has acted on the BYE more than
	// 5 s late; the call then still ends as hung up, through the silence
	// check and its second question to LiveKit, which bounds it.
	require.Less(t, took, call.DefaultMediaLoss+call.PresenceRecheck+hangUpReached)
}

// Voicemail on a campaign call: the prompt comes from the campaign and the
// contact; the phone is an answering machine (a spoken greeting, then a
// 1 kHz beep); the model detects the machine, the worker has it leave the
// campaign's message (rendered with the contact's variables) after the
// beep, never over the greeting, and hangs up once the message was played.
func TestVoicemailLeavesTheCampaignsMessage(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	greeting, err := calleesim.Speech(ctx, "Hello, you have reached the front desk of Oak Clinic. We cannot take your call. Please leave a message after the tone.", sipphone.SampleRate)
	require.NoError(t, err)
	message := "Hi, this is Ava from DocShield with a message for {{practice_name}}. Please call us back."
	sc := scenario{
		// As a real model does: the agent's opener, which the machine's
		// greeting talks over (and server VAD cancels), then, once it has
		// heard enough of the greeting to know it is a machine (the
		// greeting's first pause), voicemail_detected. The model's first
		// response cannot be the tool call: how much of the greeting
		// arrives before it is a race the greeting wins on a busy machine.
		model: realtimesim.Script{Agent: []realtimesim.AgentTurn{
			{Text: "Hello, this is Ava from DocShield.", AudioMS: 1200},
			{Tool: &realtimesim.ToolCall{Name: "voicemail_detected"}},
			{Text: "Hi, this is Ava from DocShield with a message for Oak Clinic. Please call us back.", AudioMS: 1500},
		}},
		phone: sipphone.Voicemail(greeting),
	}
	e := newSIPCallEnv(t, sc)
	campaign := &store.Campaign{Name: "records", Status: store.CampaignRunning, CallerID: "+15550009999",
		Agent: store.AgentConfig{InstructionsTemplate: instructions}}
	require.NoError(t, e.st.InsertCampaign(ctx, campaign))
	_, err = e.st.DB().Collection(store.CollCampaigns).UpdateOne(ctx, bson.D{{Key: "_id", Value: campaign.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "agent.voicemail_message", Value: message}}}})
	require.NoError(t, err)
	contact := store.Contact{ID: bson.NewObjectID(), CampaignID: campaign.ID, Phone: calleePhone,
		Variables: map[string]string{"practice_name": "Oak Clinic"}, Status: store.ContactCalling}
	_, _, err = e.st.InsertContacts(ctx, []store.Contact{contact})
	require.NoError(t, err)
	now := time.Now()
	_, err = e.st.CreateAttempts(ctx, []*store.Call{{ID: e.id, CampaignID: campaign.ID, ContactID: contact.ID, Attempt: 1,
		Status: store.CallQueued, CreatedAt: now, QueuedAt: now}})
	require.NoError(t, err)

	c := e.run(t, ctx, task(t, tasks.CallOutbound{AttemptID: e.id}))
	d := e.requireEnded(t, c, store.CallVoicemail)
	require.Equal(t, "voicemail: message left", d.EndReason)
	require.Equal(t, []string{"voicemail_detected"}, toolNames(c.ToolCalls))

	log := e.sim.Log()
	// A response the greeting cancelled before it sent anything gives its
	// turn back (realtimesim): a later response says the same turn, and
	// only that one counts. One cancelled after it began (its content part
	// sent, no audio yet, on a busy machine) keeps its turn, and counts.
	var said []realtimesim.ResponseRecord
	for i, r := range log.Responses {
		gaveBack := r.Status == "cancelled" && slices.ContainsFunc(log.Responses[i+1:],
			func(later realtimesim.ResponseRecord) bool { return later.Turn == r.Turn })
		if !gaveBack {
			said = append(said, r)
		}
	}
	log.Responses = said
	require.Len(t, log.Responses, 3, "the opener, the tool call, the message: the machine's greeting and beep started no response")
	require.Contains(t, log.Responses[2].Instructions, "Hi, this is Ava from DocShield with a message for Oak Clinic. Please call us back.")
	require.Contains(t, log.Responses[2].Instructions, "calling Oak Clinic on behalf of DocShield", "the session's instructions stay")
	require.Len(t, log.ToolOutputs, 1)
	last := c.Transcript[len(c.Transcript)-1]
	require.Equal(t, "agent", last.Role)
	require.Contains(t, last.Text, "with a message for Oak Clinic")
	require.NotContains(t, last.Text, "[interrupted]", "the message was said in full")

	rec := e.requireAgentHangUpReachedThePhone(t, "voicemail message left")
	require.Equal(t, calleePhone, rec.Number, "the contact's number")
	require.Equal(t, "+15550009999", rec.From, "the campaign's caller id")
	greetingEnd, ok := rec.Mark(sipphone.MarkGreetingEnd)
	require.True(t, ok)
	beepEnd, ok := rec.Mark(sipphone.MarkBeepEnd)
	require.True(t, ok, "the machine beeped: %+v", rec)
	// The machine records from its beep: there it heard the message, and
	// nothing else. (Before, the opener may have been heard under the
	// greeting, cut when the greeting began.)
	var recorded []sipphone.Span
	for _, sp := range e.phoneCall(t).Heard().Spans(speechHangover) {
		if sp.End.After(beepEnd) {
			recorded = append(recorded, sp)
		}
	}
	require.Len(t, recorded, 1, "the machine recorded the message and nothing else")
	require.Greater(t, recorded[0].Duration(), time.Second, "the 1.5 s message was heard")
	late := recorded[0].Start.Sub(beepEnd)
	t.Logf("measured: the message reached the machine %s after its beep ended (greeting %s, beep 400ms)",
		late.Round(time.Millisecond), greetingEnd.Sub(rec.Answered).Round(time.Millisecond))
	require.Positive(t, late, "not over the greeting or the beep")
	require.Less(t, late, 1500*time.Millisecond, "right after the beep (target 500 ms; a busy machine gets more)")
}

// Unanswered dials end with the status the phone's SIP answer maps to
// (as LiveKit's SIP service reports it); nothing is said, and the room is
// deleted. A phone that rings out is cancelled at the call's ring timeout.
func TestUnansweredDials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script sipphone.Script
		status store.CallStatus
		reason string
		sip    int // the phone's final answer
	}{
		{"busy", sipphone.Busy(), store.CallBusy, "busy", 486},
		{"no answer", sipphone.RingOut(), store.CallNoAnswer, "no answer", 487},
		{"unavailable", sipphone.Unavailable(), store.CallNoAnswer, "no answer", 480},
		{"rejected", sipphone.Refuse(603, 200*time.Millisecond), store.CallFailed, "rejected", 603},
		{"no such number", sipphone.Refuse(404, 0), store.CallFailed, "dial failed", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := scenario{phone: tc.script, timers: call.Timers{RingTimeout: time.Second}}
			e := newSIPCallEnv(t, sc)
			c := e.run(t, testCtx(t), e.inlineTask(t, sc))
			d := e.requireEnded(t, c, tc.status)
			require.True(t, strings.HasPrefix(d.EndReason, tc.reason), d.EndReason)
			if tc.sip != 487 { // a ring timeout has no SIP status
				require.Contains(t, d.EndReason, fmt.Sprintf("(SIP %d ", tc.sip), "the SIP status is in the reason")
			}
			require.False(t, c.RingingAt.IsZero())
			require.True(t, c.AnsweredAt.IsZero())
			require.Empty(t, c.Transcript)
			require.Nil(t, c.Recording, "nothing to record")
			log, err := e.sim.WaitFor(testCtx(t), func(l realtimesim.Log) bool { return l.Disconnects == 1 })
			require.NoError(t, err)
			require.Empty(t, log.Responses, "the agent never spoke")

			rec := ended(t, e.phoneCall(t))
			require.Equal(t, tc.sip, rec.Status)
			require.True(t, rec.Answered.IsZero())
			if tc.sip == 487 {
				require.Equal(t, sipphone.PartyCaller, rec.HungUpBy, "LiveKit cancelled the INVITE")
				rang := rec.Ended.Sub(rec.Rang)
				require.GreaterOrEqual(t, rang, 800*time.Millisecond, "it rang for the call's ring timeout")
				require.Less(t, rang, 5*time.Second, "and not for the default 30 s")
			}
		})
	}
}

// Silence: nobody says anything. The agent asks once whether the person
// is there, then hangs up.
func TestSilenceTimeoutAsksOnceThenHangsUp(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{Agent: []realtimesim.AgentTurn{
			{Text: "Hello, this is Ava from DocShield.", AudioMS: 600},
			{Text: "Are you still there?", AudioMS: 600},
		}},
		timers: call.Timers{Silence: time.Second},
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)
	require.Contains(t, d.EndReason, "silence")
	e.requireAgentHangUpReachedThePhone(t, "silence")
	log := e.sim.Log()
	require.Len(t, log.Responses, 2, "the greeting and one question, no more")
	require.Contains(t, log.Responses[1].Instructions, "still there")
	require.Equal(t, []string{"agent", "agent"}, roles(c.Transcript))
	require.Equal(t, "Are you still there?", c.Transcript[1].Text)
	require.GreaterOrEqual(t, c.Transcript[1].StartMS-c.Transcript[0].EndMS, int64(1000), "asked after a second of silence")
}

// Maximum duration: the agent is cut short, wraps up with one polite line,
// and the call ends.
func TestMaxDurationWrapsUpPolitely(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{Agent: []realtimesim.AgentTurn{
			{Text: "Hello, this is Ava from DocShield, and I have a long list of questions.", AudioMS: 8000},
			{Text: "I'm sorry, we are out of time. Goodbye.", AudioMS: 800},
		}},
		timers: call.Timers{MaxDuration: 2 * time.Second},
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)
	require.Equal(t, "maximum call duration reached", d.EndReason)
	require.Len(t, d.Interruptions, 1)
	require.Equal(t, "max_duration", d.Interruptions[0].Cause)
	log := e.sim.Log()
	require.Len(t, log.Truncates, 1)
	require.Len(t, log.Responses, 2)
	require.Contains(t, log.Responses[1].Instructions, "time limit")
	require.Equal(t, []string{"agent", "agent"}, roles(c.Transcript))
	require.True(t, strings.HasSuffix(c.Transcript[0].Text, "[interrupted]"))
	require.Equal(t, "I'm sorry, we are out of time. Goodbye.", c.Transcript[1].Text)
	e.requireAgentHangUpReachedThePhone(t, "maximum duration")
}

// Opt-out: the number lands on the do-not-call list the moment the model
// calls opt_out; the agent confirms politely and the call ends.
func TestOptOutAddsTheNumberToDoNotCall(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{
			Agent: []realtimesim.AgentTurn{
				{Text: "Hello, this is Ava from DocShield.", AudioMS: 800},
				{Tool: &realtimesim.ToolCall{Name: "opt_out", Arguments: toolArgs(`{"reason":"asked not to be called"}`)}},
				{Text: "Understood, you will not be called again. Goodbye.", AudioMS: 900},
			},
			Callee: []string{"Please take us off your list."},
		},
		phone: sipphone.Script{AgentQuiet: 400 * time.Millisecond, Steps: []sipphone.Step{
			sipphone.WaitForAgentTurn(), sipphone.Say(phoneTone(700 * time.Millisecond)), sipphone.WaitForAgentTurn(),
		}},
	}
	e := newSIPCallEnv(t, sc)
	ctx := testCtx(t)
	c := e.run(t, ctx, e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)
	require.True(t, d.OptedOut)
	require.Equal(t, "opted_out", c.Outcome)
	listed, err := e.st.IsDoNotCall(ctx, calleePhone)
	require.NoError(t, err)
	require.True(t, listed)
	var dnc store.DoNotCall
	require.NoError(t, e.st.DB().Collection(store.CollDoNotCall).FindOne(ctx, bson.D{{Key: "phone", Value: calleePhone}}).Decode(&dnc))
	require.Equal(t, "agent:opt_out", dnc.Source)
	require.Contains(t, dnc.Reason, "asked not to be called")

	require.Equal(t, []string{"opt_out"}, toolNames(c.ToolCalls))
	log := e.sim.Log()
	require.Len(t, log.ToolOutputs, 1)
	require.Contains(t, log.ToolOutputs[0].Output, "do-not-call")
	require.Equal(t, []string{"agent", "callee", "agent"}, roles(c.Transcript))
	require.Equal(t, "Understood, you will not be called again. Goodbye.", c.Transcript[2].Text)
	e.requireAgentHangUpReachedThePhone(t, "opt-out")
}

// Transfer: the agent announces it, and once that was heard the callee is
// handed over: LiveKit's SIP service sends the phone a REFER naming the
// target, the phone (the carrier) accepts, reports the target answered,
// and leaves the call. The call document records the transfer.
func TestTransferToHuman(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{
			Agent: []realtimesim.AgentTurn{
				{Text: "Hello, this is Ava from DocShield.", AudioMS: 800},
				{Text: "Let me transfer you to a colleague.", AudioMS: 900,
					Tool: &realtimesim.ToolCall{Name: "transfer_to_human", Arguments: toolArgs(`{"reason":"asked for a person"}`)}},
			},
			Callee: []string{"Can I speak to a person?"},
		},
		phone: sipphone.Script{AgentQuiet: 400 * time.Millisecond, Steps: []sipphone.Step{
			sipphone.WaitForAgentTurn(), sipphone.Say(phoneTone(700 * time.Millisecond)), sipphone.WaitForAgentTurn(),
		}},
		prompt: func(p *call.Prompt) { p.TransferTo = "+15550002222" },
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)
	require.Equal(t, "transferred to a human", d.EndReason)
	require.Equal(t, "transferred", c.Outcome)
	require.Equal(t, "+15550002222", d.TransferredTo)
	require.Equal(t, []string{"agent", "callee", "agent"}, roles(c.Transcript))
	require.Equal(t, "Let me transfer you to a colleague.", c.Transcript[2].Text, "announced in full before the transfer")

	pc := e.phoneCall(t)
	rec := ended(t, pc)
	require.Len(t, rec.Transfers, 1, "one REFER: %v", rec.Events)
	require.Equal(t, "tel:+15550002222", rec.Transfers[0].URI(), "the REFER names the target")
	require.Equal(t, 200, rec.Transfers[0].Status, "and the target answered")
	require.Equal(t, sipphone.PartyPhone, rec.HungUpBy, "the carrier left the call once the target answered")
	require.Equal(t, "transferred", rec.EndReason)
	require.Len(t, agentSpeech(pc), 2, "the phone heard the announcement before the REFER")
	require.True(t, pc.Heard().Spans(speechHangover)[1].End.Before(rec.Transfers[0].At), "the announcement was heard before the REFER")
}

// Without a transfer number, transfer_to_human is answered with an error
// for the model and the call goes on.
func TestTransferWithoutANumberContinuesTheCall(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{Agent: []realtimesim.AgentTurn{
			{Text: "Hello, this is Ava from DocShield.", AudioMS: 600,
				Tool: &realtimesim.ToolCall{Name: "transfer_to_human", Arguments: toolArgs(`{}`)}},
			{Text: "I cannot transfer you, but someone will call back. Goodbye.", AudioMS: 800,
				Tool: &realtimesim.ToolCall{Name: "set_disposition", Arguments: toolArgs(`{"disposition":"callback_requested","oops":1}`)}},
			{Text: "", Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: toolArgs(`{"reason":"callback promised"}`)}},
		}},
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)
	require.Equal(t, "the agent ended the call: callback promised", d.EndReason)
	require.Empty(t, ended(t, e.phoneCall(t)).Transfers, "no REFER")
	require.Equal(t, []string{"transfer_to_human", "set_disposition", "end_call"}, toolNames(c.ToolCalls))
	log := e.sim.Log()
	require.Len(t, log.ToolOutputs, 2)
	require.Contains(t, log.ToolOutputs[0].Output, "not available")
	require.Contains(t, log.ToolOutputs[1].Output, "error", "bad arguments go back to the model")
	require.Contains(t, c.ToolCalls[1].Result, "oops")
	require.Empty(t, d.Disposition, "an invalid disposition is not recorded")
}

// The model fails under the call: the socket drops, the session expires,
// or responses keep failing. The call ends at once as failed with the
// reason, and the callee is hung up on.
func TestModelFailureEndsTheCall(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults []realtimesim.Fault
		reason string
	}{
		{"socket dropped", []realtimesim.Fault{{At: realtimesim.AtAudioDelta, N: 3, Do: realtimesim.Drop}},
			"the model session ended"},
		{"session expired", []realtimesim.Fault{{At: realtimesim.AtAudioDelta, N: 3, Do: realtimesim.SessionExpired}},
			"session_expired"},
		{"responses keep failing", []realtimesim.Fault{
			{At: realtimesim.AtResponseCreate, N: 1, Do: realtimesim.FailResponse},
			{At: realtimesim.AtResponseCreate, N: 2, Do: realtimesim.FailResponse},
		}, "the model failed 2 responses in a row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := scenario{model: realtimesim.Script{
				Agent:  []realtimesim.AgentTurn{{Text: "Hello, this is Ava from DocShield, calling about records.", AudioMS: 3000}},
				Faults: tc.faults,
			}}
			e := newSIPCallEnv(t, sc)
			c := e.run(t, testCtx(t), e.inlineTask(t, sc))
			d := e.requireEnded(t, c, store.CallFailed)
			require.Contains(t, d.EndReason, tc.reason)
			require.Equal(t, d.EndReason, c.Error)
			require.Len(t, e.sim.Log().Faults, len(tc.faults))
			e.requireAgentHangUpReachedThePhone(t, "model failure: "+tc.name)
		})
	}
}

// One failed response (a rate limit, a server error) is asked again, and
// the call goes on.
func TestOneFailedResponseIsRetried(t *testing.T) {
	t.Parallel()
	sc := scenario{model: realtimesim.Script{
		Agent: []realtimesim.AgentTurn{{Text: "Hello, goodbye.", AudioMS: 600,
			Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: toolArgs(`{"reason":"done"}`)}}},
		Faults: []realtimesim.Fault{{At: realtimesim.AtResponseCreate, N: 1, Do: realtimesim.FailResponse}},
	}}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)
	require.Equal(t, "the agent ended the call: done", d.EndReason)
	log := e.sim.Log()
	require.Len(t, log.Responses, 2)
	require.Equal(t, "failed", log.Responses[0].Status)
	require.Equal(t, []string{"agent"}, roles(c.Transcript))
}

// The worker shuts down mid-call (the task's context is cancelled): the
// agent is cut short, says one polite line, and the call ends as
// interrupted. Run returns nil: the call is never redialed.
func TestShutdownEndsTheCallPolitelyAsInterrupted(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{Agent: []realtimesim.AgentTurn{
			{Text: "Hello, this is Ava from DocShield, and I am calling about a records request.", AudioMS: 6000},
			{Text: "I'm sorry, I have to go now. Goodbye.", AudioMS: 800},
		}, ResponseDelayMS: 400}, // a gap the callee hears between the cut greeting and the goodbye
	}
	e := newSIPCallEnv(t, sc)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	// Shut down once the phone has heard a good part of the greeting.
	e.whenPhoneHeard(ctx, 600*time.Millisecond, cancel)
	c := e.run(t, ctx, e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallInterrupted)
	require.Equal(t, "the worker shut down during the call", d.EndReason)
	require.Equal(t, d.EndReason, c.Error)
	require.Len(t, d.Interruptions, 1)
	require.Equal(t, "shutdown", d.Interruptions[0].Cause)
	log := e.sim.Log()
	require.Len(t, log.Responses, 2)
	require.Contains(t, log.Responses[1].Instructions, "end the call right now")
	require.Equal(t, []string{"agent", "agent"}, roles(c.Transcript))
	require.Equal(t, "I'm sorry, I have to go now. Goodbye.", c.Transcript[1].Text)
	e.requireAgentHangUpReachedThePhone(t, "shutdown")
	require.Len(t, agentSpeech(e.phoneCall(t)), 2, "the cut greeting, then the goodbye")
}

// A number that went on the do-not-call list after the attempt was queued
// is not dialed: the attempt is cancelled, with the reason.
func TestDoNotCallIsCheckedRightBeforeDialing(t *testing.T) {
	t.Parallel()
	sc := scenario{}
	e := newSIPCallEnv(t, sc)
	ctx := testCtx(t)
	require.NoError(t, e.st.AddDoNotCall(ctx, store.DoNotCall{Phone: calleePhone, Source: "test"}))
	c := e.run(t, ctx, e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCancelled)
	require.Contains(t, d.EndReason, "do-not-call")
	require.Empty(t, e.line.Phone.Calls(), "never dialed")
	require.True(t, c.RingingAt.IsZero())
}

// The campaign's own last check (running, calling hours) can refuse the
// dial too; a check that cannot be made fails the attempt, undialed.
func TestDialCheckRefusesOrFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		check  func(context.Context, *store.Call) (string, error)
		status store.CallStatus
		reason string
	}{
		{"refused", func(context.Context, *store.Call) (string, error) { return "the campaign is paused", nil },
			store.CallCancelled, "not dialed: the campaign is paused"},
		{"cannot check", func(context.Context, *store.Call) (string, error) { return "", errors.New("campaigns unreachable") },
			store.CallFailed, "not dialed: could not check whether to dial: campaigns unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := scenario{dialCheck: tc.check}
			e := newSIPCallEnv(t, sc)
			c := e.run(t, testCtx(t), e.inlineTask(t, sc))
			d := e.requireEnded(t, c, tc.status)
			require.Equal(t, tc.reason, d.EndReason)
			require.Equal(t, tc.reason, c.Error)
			require.Empty(t, e.line.Phone.Calls(), "never dialed")
		})
	}
}

// The legal checks are read after the dial check, which is where the
// fleet's dial slot is waited for (up to DIAL_RATE_MAX_WAIT): a number put
// on the do-not-call list while the call waited is never rung.
func TestDoNotCallIsCheckedAfterTheDialSlot(t *testing.T) {
	t.Parallel()
	var e *callEnv
	var waited atomic.Bool
	sc := scenario{dialCheck: func(ctx context.Context, c *store.Call) (string, error) {
		waited.Store(true)
		// While the call waits for its slot, the callee asks not to be called.
		return "", e.st.AddDoNotCall(ctx, store.DoNotCall{Phone: c.Phone, Reason: "asked while the call waited", Source: "test", CreatedAt: time.Now()})
	}}
	e = newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	require.True(t, waited.Load())
	d := e.requireEnded(t, c, store.CallCancelled)
	require.Equal(t, "not dialed: the number is on the do-not-call list", d.EndReason)
	require.Empty(t, e.line.Phone.Calls(), "never dialed")
}

// A template variable without a value fails the attempt before anything
// happens: no room, no model session, no dial.
func TestMissingVariableFailsBeforeDialing(t *testing.T) {
	t.Parallel()
	sc := scenario{instructions: "Call {{practice_name}} about {{topic}}."}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallFailed)
	require.Contains(t, d.EndReason, "topic")
	require.Contains(t, c.Error, "topic")
	require.Empty(t, e.line.Phone.Calls())
	require.Zero(t, e.sim.Log().Connections)
	require.Empty(t, c.Room)
}

// Every goroutine a call starts ends with it. A first call warms up what
// the SDKs start once per process; a second must leave nothing behind.
// (The phone, the far end, runs in this process too; its goroutines are
// not counted.)
func TestCallLeavesNoGoroutineBehind(t *testing.T) {
	sc := scenario{
		model: realtimesim.Script{Agent: []realtimesim.AgentTurn{
			{Text: "Hello, goodbye.", AudioMS: 600, Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: toolArgs(`{"reason":"done"}`)}},
		}},
	}
	for i := range 2 {
		e := newSIPCallEnv(t, sc)
		before, _ := goroutines()
		c := e.run(t, testCtx(t), e.inlineTask(t, sc))
		e.requireEnded(t, c, store.CallCompleted)
		ended(t, e.phoneCall(t))
		if i == 0 {
			continue
		}
		deadline := time.Now().Add(wait)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n, stacks := goroutines(); n > before; n, stacks = goroutines() {
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines left behind (before the call: %d):\n%s", n, before, stacks)
			}
			<-tick.C
		}
	}
}

// The attempt is reaped mid-call (its lease lapsed: the worker looked
// dead). The call stops at once and hangs up, and writes nothing more: the
// attempt belongs to the reaper's verdict now.
func TestReapedAttemptStopsTheCall(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{Agent: []realtimesim.AgentTurn{
			{Text: "Hello, this is Ava from DocShield, and I am calling about a records request.", AudioMS: 6000},
		}},
		lease: 900 * time.Millisecond,
	}
	e := newSIPCallEnv(t, sc)
	ctx := testCtx(t)
	e.whenPhoneHeard(ctx, 300*time.Millisecond, func() { _, _ = e.st.ReapExpired(ctx, time.Now().Add(time.Hour), 10) })
	c := e.run(t, ctx, e.inlineTask(t, sc))
	require.Equal(t, store.CallInterrupted, c.Status)
	require.Contains(t, c.Error, "lease lapsed", "the reaper's reason stands")
	require.Empty(t, e.details(t).EndReason, "the call wrote nothing after losing its claim")
	require.Empty(t, e.analyze.attempts())
	exists, err := e.rooms.Exists(ctx, e.room)
	require.NoError(t, err)
	require.False(t, exists, "hung up")
	e.requireAgentHangUpReachedThePhone(t, "claim lost to the reaper")
	heard := agentSpeech(e.phoneCall(t))
	require.Len(t, heard, 1)
	require.Less(t, heard[0], 5*time.Second, "hung up before the 6 s greeting ended")
}
