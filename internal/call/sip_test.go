package call_test

import (
	"context"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// What a phone line needs that a WebRTC room never showed, each proved
// over the SIP leg with the phone's record (see sip_helpers_test.go).

// A practice's phone tree: "for the front desk, press 2". The model's
// send_dtmf reaches the phone as RFC 4733 telephone-events (LiveKit's SIP
// service turns the agent's DTMF data packets into them), the tree answers,
// and the transcript says what was pressed, where.
func TestSendDTMFReachesThePhoneTree(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{
			Agent: []realtimesim.AgentTurn{
				{Text: ""}, // the greeting: the agent waits for the menu
				{Tool: &realtimesim.ToolCall{Name: "send_dtmf", Arguments: toolArgs(`{"digits":"2"}`)}},
				{Text: "Hello, this is Ava from DocShield about a records request. I will call back, goodbye.", AudioMS: 1500,
					Tool: &realtimesim.ToolCall{Name: "end_call", Arguments: toolArgs(`{"reason":"front desk reached"}`)}},
			},
			Callee: []string{"Thank you for calling Elm Dental. For the front desk, press 2.", "Front desk, how can I help?"},
		},
		phone: sipphone.Script{AgentQuiet: 400 * time.Millisecond, Steps: []sipphone.Step{
			sipphone.Say(phoneTone(1500 * time.Millisecond)), sipphone.Mark(sipphone.MarkPromptEnd),
			sipphone.WaitForDigits(1), sipphone.Mark(sipphone.MarkDigits),
			sipphone.Pause(300 * time.Millisecond), // the tree puts the call through
			sipphone.Say(phoneTone(600 * time.Millisecond)), sipphone.WaitForAgentTurn(),
		}},
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)
	require.Equal(t, "the agent ended the call: front desk reached", d.EndReason)
	require.Equal(t, []string{"send_dtmf", "end_call"}, toolNames(c.ToolCalls))
	require.Equal(t, "Pressed 2. Listen to what the menu says next.", c.ToolCalls[0].Result)

	rec := e.requireAgentHangUpReachedThePhone(t, "end_call after the phone tree")
	require.Equal(t, "2", rec.Keys(), "the phone got the key, as an RFC 4733 event")
	key := rec.Digits[0]
	require.False(t, key.End.IsZero(), "the event's end packet arrived")
	require.Positive(t, key.Duration)
	prompted, _ := rec.Mark(sipphone.MarkPromptEnd)
	pressed, _ := rec.Mark(sipphone.MarkDigits)
	require.True(t, key.At.After(prompted), "pressed after the menu was heard")
	t.Logf("measured: the key reached the phone %s after the menu ended; the event lasted %s",
		key.At.Sub(prompted).Round(time.Millisecond), key.Duration)

	// The transcript: the menu, the key pressed, the front desk, the agent.
	require.Equal(t, []string{"callee", "agent", "callee", "agent"}, roles(c.Transcript), "%+v", c.Transcript)
	require.Equal(t, "[pressed 2]", c.Transcript[1].Text)
	at := time.Duration(c.Transcript[1].StartMS) * time.Millisecond
	require.InDelta(t, pressed.Sub(rec.Answered).Milliseconds(), at.Milliseconds(), 2000,
		"the transcript places the key press where the phone got it")
	requireOrdered(t, c.Transcript)
}

// The callee's media stops mid-call (their network failed; no BYE comes):
// the call ends as media lost, a failure of ours for the retry policy, and
// hangs up the line so it does not stay open until LiveKit's media timeout.
func TestMediaLostHangsUpTheLine(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{Agent: []realtimesim.AgentTurn{
			{Text: "Hello, this is Ava from DocShield.", AudioMS: 800},
			{Text: "Are you there?", AudioMS: 600},
		}, Callee: []string{"Hello?"}},
		phone: sipphone.Script{AgentQuiet: 400 * time.Millisecond, Steps: []sipphone.Step{
			sipphone.WaitForAgentTurn(), sipphone.Say(phoneTone(500 * time.Millisecond)), sipphone.CutMedia(),
		}},
		timers: call.Timers{MediaLoss: 2 * time.Second},
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallFailed)
	require.Equal(t, call.OutcomeMediaLost, c.Outcome)
	require.Contains(t, d.EndReason, "no audio from the callee")
	require.Contains(t, d.EndReason, "still in the room", "LiveKit still had the callee: the line was up")
	e.requireAgentHangUpReachedThePhone(t, "media lost")
}

// The agent listens to the callee LiveKit names in its reply to the dial,
// whatever identity was asked for: it hears them (their words are in the
// transcript) and notices when they hang up.
func TestAgentHearsTheCalleeLiveKitNames(t *testing.T) {
	t.Parallel()
	sc := scenario{
		model: realtimesim.Script{
			Agent: []realtimesim.AgentTurn{
				{Text: "Hello, this is Ava from DocShield.", AudioMS: 800},
				{Text: "Thank you, I will call again tomorrow.", AudioMS: 1000},
			},
			Callee: []string{"Who is this?"},
		},
		phone: sipphone.Script{AgentQuiet: 400 * time.Millisecond, Steps: []sipphone.Step{
			sipphone.WaitForAgentTurn(), sipphone.Say(phoneTone(600 * time.Millisecond)), sipphone.WaitForAgentTurn(), sipphone.HangUp(),
		}},
		dialer: func(d telephony.Dialer) telephony.Dialer { return renamingDialer{Dialer: d, identity: "pstn-7"} },
	}
	e := newSIPCallEnv(t, sc)
	c := e.run(t, testCtx(t), e.inlineTask(t, sc))
	d := e.requireEnded(t, c, store.CallCompleted)
	require.Equal(t, "callee hung up", d.EndReason)
	require.Equal(t, []string{"agent", "callee", "agent"}, roles(c.Transcript), "%+v", c.Transcript)
	require.Equal(t, "Who is this?", c.Transcript[1].Text)
	require.Equal(t, sipphone.PartyPhone, ended(t, e.phoneCall(t)).HungUpBy)
}

// A worker that dies mid-call leaves the line open; the reaper of another
// worker settles the attempt and deletes its room, and LiveKit's SIP
// service hangs up the phone.
func TestReaperHangsUpTheLineOfADeadWorker(t *testing.T) {
	t.Parallel()
	e := newSIPCallEnv(t, scenario{})
	ctx := testCtx(t)
	require.NoError(t, e.st.CreateAttempt(ctx, &store.Call{ID: e.id, Attempt: 1, Phone: calleePhone}))
	claim, err := e.st.ClaimAttempt(ctx, e.id, "dead-worker", time.Second)
	require.NoError(t, err)
	room, err := e.rooms.Create(ctx, e.id)
	require.NoError(t, err)
	d, err := telephony.NewSIPDialer(e.line.Telephony(t))
	require.NoError(t, err)
	leg, err := d.Dial(ctx, telephony.DialRequest{AttemptID: e.id, Room: room, To: calleePhone})
	require.NoError(t, err)
	require.NoError(t, e.st.Transition(ctx, claim, store.CallInProgress, store.CallFields{Room: room, SIPCallID: leg.SIPCallID}))
	// The worker dies here: nobody renews the lease or hangs up.
	pc := e.phoneCall(t)
	require.Equal(t, 200, pc.Record().Status)

	deleter := &deleteClock{RoomDeleter: e.rooms}
	r := call.NewReaper(call.ReaperOptions{Store: e.st, Rooms: deleter, Interval: time.Hour, Logger: zap.NewNop(),
		Now: func() time.Time { return time.Now().Add(time.Minute) }})
	r.Pass(ctx)
	c, err := e.st.GetCall(ctx, e.id)
	require.NoError(t, err)
	require.Equal(t, store.CallInterrupted, c.Status)

	rec := ended(t, pc)
	require.Equal(t, sipphone.PartyCaller, rec.HungUpBy)
	require.Equal(t, "bye", rec.EndReason)
	took := firstEvent(t, rec, false, sip.BYE).Sub(deleter.at)
	t.Logf("measured: hang-up (reaper) reached the phone as BYE %s after the room was deleted", took.Round(time.Millisecond))
	require.Less(t, took, hangUpReached)
	require.Positive(t, took)
}

// deleteClock notes when the reaper deleted the room.
type deleteClock struct {
	call.RoomDeleter
	at time.Time // written by Delete, read after Pass returned
}

func (d *deleteClock) Delete(ctx context.Context, room string) error {
	d.at = time.Now()
	return d.RoomDeleter.Delete(ctx, room)
}
