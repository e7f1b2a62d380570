package calleesim

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/heard"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

const rate = telephony.DefaultSampleRate

// callFixture is one call's worth of real LiveKit: a room, the agent seated
// in it (what the worker does), and the simulated phone network.
type callFixture struct {
	cfg    telephony.Config
	rooms  *telephony.Rooms
	room   string
	agent  *telephony.Participant
	heard  *Recording // what the agent heard from the callee
	dialer *Dialer
}

func newCall(t *testing.T, script Script) *callFixture {
	t.Helper()
	cfg := telephony.Config{
		URL:         testenv.Get(t, "LIVEKIT_URL"),
		APIKey:      testenv.Get(t, "LIVEKIT_API_KEY"),
		APISecret:   testenv.Get(t, "LIVEKIT_API_SECRET"),
		CallerID:    "+15550001111",
		RingTimeout: 2 * time.Second,
	}
	ctx := testCtx(t)
	rooms, err := telephony.NewRooms(cfg, nil)
	require.NoError(t, err)
	room, err := rooms.Create(ctx, testenv.UniqueName(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rooms.Delete(context.Background(), room) })

	f := &callFixture{cfg: cfg, rooms: rooms, room: room, heard: heard.New(rate, DefaultSpeechThreshold, 30*time.Second)}

	// A join context that ends right after joining: the seat must not
	// depend on it.
	joinCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	f.agent, err = telephony.Join(joinCtx, cfg, room, telephony.ParticipantOptions{
		Identity:    telephony.AgentIdentity,
		Peer:        telephony.DefaultCalleeIdentity,
		OnPeerAudio: func(pcm []int16) { f.heard.Append(time.Now(), pcm) },
	})
	cancel()
	require.NoError(t, err)
	t.Cleanup(f.agent.Close)

	f.dialer, err = NewDialer(cfg, DialerOptions{
		Script: func(telephony.DialRequest) Script { return script },
		Callee: Options{KeepAudio: 30 * time.Second},
	})
	require.NoError(t, err)
	t.Cleanup(f.dialer.Close)
	return f
}

func (f *callFixture) dial(t *testing.T) (telephony.CallLeg, *Call) {
	t.Helper()
	leg, err := f.dialer.Dial(testCtx(t), telephony.DialRequest{AttemptID: "att", Room: f.room, To: "+15557654321"})
	outcome := telephony.OutcomeOf(err)
	require.NoError(t, err)
	require.Equal(t, telephony.Answered, outcome)
	call := f.dialer.Call(f.room)
	require.NotNil(t, call)
	return leg, call
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// The agent's voice reaches the callee and the callee's reaches the agent,
// through a real LiveKit server and two Opus legs.
func TestAudioFlowsBothWays(t *testing.T) {
	answer := Tone(600, 600*time.Millisecond, rate, 0.3)
	f := newCall(t, Script{Steps: []Step{WaitForAgentTurn(), Say(answer)}})
	ctx := testCtx(t)
	start := time.Now()
	leg, call := f.dial(t)
	require.Equal(t, f.room, leg.Room)
	require.Equal(t, telephony.DefaultCalleeIdentity, leg.Identity)
	require.NotEmpty(t, leg.ParticipantID)

	req := f.dialer.Requests()
	require.Len(t, req, 1, "the simulator keeps the request LiveKit would have received")
	require.Equal(t, "+15557654321", req[0].SipCallTo)
	require.Equal(t, "+15550001111", req[0].SipNumber)
	require.Equal(t, 2*time.Second, req[0].RingingTimeout.AsDuration())
	require.True(t, req[0].WaitUntilAnswered)

	require.NoError(t, f.agent.WaitListening(ctx), "the callee subscribed to the agent")
	greeting := Tone(440, 800*time.Millisecond, rate, 0.3)
	wrote := time.Now()
	require.NoError(t, f.agent.Player().Write("greeting", greeting))

	// The callee hears the greeting...
	end, err := call.Callee.WaitForAgentTurn(ctx, start, DefaultAgentQuiet)
	require.NoError(t, err)
	spans := call.Callee.Heard().Spans(200 * time.Millisecond)
	require.Len(t, spans, 1, "one utterance heard")
	require.Equal(t, end, spans[0].End)
	heardFor := time.Duration(spans[0].Samples) * time.Second / rate
	require.Greater(t, heardFor, 400*time.Millisecond, "most of the 800 ms greeting arrived")
	require.Less(t, heardFor, 2*time.Second)
	audio := call.Callee.Heard().Audio()
	require.Greater(t, ToneLevel(audio, 440, rate), 5*ToneLevel(audio, 600, rate), "what arrived is the agent's 440 Hz tone")

	// ...then answers, and the agent hears that.
	at, err := f.heard.WaitSpeech(ctx, start)
	require.NoError(t, err)
	require.True(t, at.After(end), "the callee waited for the agent's turn to end")
	_, err = f.heard.WaitQuiet(ctx, start, 300*time.Millisecond)
	require.NoError(t, err)
	got := f.heard.Audio()
	require.Greater(t, ToneLevel(got, 600, rate), 5*ToneLevel(got, 440, rate), "the agent heard the callee's 600 Hz answer")
	require.NoError(t, call.Err(), "the script ran to its end")
	said := call.Callee.Said()
	require.Len(t, said, 1)
	require.True(t, said[0].End.After(said[0].Start))
	t.Logf("one way, write to heard: agent→callee %s, callee→agent %s (first frame sent → heard)",
		spans[0].Start.Sub(wrote), at.Sub(said[0].Start))
}

// Real speech (espeak-ng), not just tones, survives the trip.
func TestCalleeSpeechReachesTheAgent(t *testing.T) {
	speech := speechOrSkip(t, "Hello, this is doctor Smith's office. How can I help you?")
	f := newCall(t, Script{Steps: []Step{Say(speech)}})
	ctx := testCtx(t)
	start := time.Now()
	_, call := f.dial(t)
	// The callee speaks first here; its voice is held until the agent
	// subscribes, so nothing is lost to an empty room.
	_, err := f.heard.WaitQuiet(ctx, start, 500*time.Millisecond)
	require.NoError(t, err)
	require.NoError(t, call.Err())
	heard := f.heard.Spans(300 * time.Millisecond)
	require.NotEmpty(t, heard)
	var samples int
	for _, s := range heard {
		samples += s.Samples
	}
	spoken := time.Duration(len(speech)) * time.Second / rate
	got := time.Duration(samples) * time.Second / rate
	require.Greater(t, got, spoken/3, "a good part of %s of speech was heard as speech (got %s)", spoken, got)
	require.Greater(t, RMS(f.heard.Audio()), 200.0)
}

// Barge-in: the callee talks over the agent, the agent (here the test, as
// the realtime layer will) clears its queue, and the agent's voice stops at
// the callee long before the rest of the queued answer could have played.
func TestClearStopsTheAgentAtTheCallee(t *testing.T) {
	interruption := Tone(600, time.Second, rate, 0.3)
	f := newCall(t, Script{Steps: []Step{WaitForAgentSpeech(), Pause(300 * time.Millisecond), StartSaying(interruption)}})
	ctx := testCtx(t)
	start := time.Now()
	_, call := f.dial(t)
	require.NoError(t, f.agent.WaitListening(ctx))
	long := Tone(440, 8*time.Second, rate, 0.3)
	require.NoError(t, f.agent.Player().Write("long-answer", long))

	// The agent hears the callee start talking and clears at once.
	_, err := f.heard.WaitSpeech(ctx, start)
	require.NoError(t, err)
	in := f.agent.Player().Clear()
	require.Equal(t, "long-answer", in.Item)
	require.Greater(t, in.Dropped, 5*time.Second, "most of the answer never played")
	require.Equal(t, 8*time.Second, in.Played+in.Dropped)

	// The callee hears the agent stop.
	stopped, err := call.Callee.WaitForAgentTurn(ctx, start, 500*time.Millisecond)
	require.NoError(t, err)
	var loud int
	for _, s := range call.Callee.Heard().Spans(200 * time.Millisecond) {
		loud += s.Samples
	}
	heard := time.Duration(loud) * time.Second / rate
	require.Less(t, heard, in.Played+time.Second, "nothing beyond what was played (plus the network's tail) was heard")
	require.Less(t, heard, 4*time.Second)
	t.Logf("played %s before the clear, callee heard %s of it, last at %s", in.Played, heard, stopped.Format("15:04:05.000"))
}

func TestHangupRemovesTheCalleeAndTheRoom(t *testing.T) {
	f := newCall(t, Script{Steps: []Step{Pause(time.Minute)}})
	ctx := testCtx(t)
	leg, call := f.dial(t)
	require.NoError(t, f.agent.WaitListening(ctx))
	ids, err := f.rooms.Participants(ctx, f.room)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{telephony.AgentIdentity, telephony.DefaultCalleeIdentity}, ids)

	require.NoError(t, f.rooms.Hangup(ctx, leg))
	waitClosed(t, call.Callee.Gone(), "the callee to be removed")
	waitClosed(t, call.Done(), "the callee's script to stop")
	require.ErrorIs(t, call.Err(), ErrHungUp)
	waitClosed(t, f.agent.Disconnected(), "the agent to leave the deleted room")
	exists, err := f.rooms.Exists(ctx, f.room)
	require.NoError(t, err)
	require.False(t, exists)
	require.NoError(t, f.rooms.Hangup(ctx, leg), "idempotent")
}

func TestCalleeHangsUp(t *testing.T) {
	f := newCall(t, Script{Steps: []Step{WaitForAgentSpeech(), HangUp()}})
	ctx := testCtx(t)
	_, call := f.dial(t)
	require.NoError(t, f.agent.WaitListening(ctx))
	// WaitListening means the callee subscribed (signalling), not that
	// media flows: on a starved machine ICE and DTLS took longer than a
	// 3 s sentence, which then ended unheard, and the callee waited for
	// speech forever. The sentence outlasts any such delay, and the callee
	// still hangs up in the middle of it.
	require.NoError(t, f.agent.Player().Write("hello", Tone(440, 60*time.Second, rate, 0.3)))
	waitClosed(t, f.agent.PeerLeft(), "the agent to see the callee hang up mid-sentence")
	require.Positive(t, f.agent.Player().Queued(), "the sentence was still playing")
	require.NoError(t, call.Err())
	select {
	case <-f.agent.Disconnected():
		t.Fatal("the agent is still in the room after the callee left")
	default:
	}
}

func TestUnansweredOutcomes(t *testing.T) {
	for _, tc := range []struct {
		script   Script
		outcome  telephony.Outcome
		sentinel error
		code     int
	}{
		{Script{Outcome: telephony.Busy}, telephony.Busy, telephony.ErrBusy, 486},
		{Script{Outcome: telephony.Rejected, RingFor: 100 * time.Millisecond}, telephony.Rejected, telephony.ErrRejected, 603},
		{Script{Outcome: telephony.NoAnswer}, telephony.NoAnswer, telephony.ErrNoAnswer, 408},
		{Script{RingFor: time.Hour}, telephony.NoAnswer, telephony.ErrNoAnswer, 408},
		{Script{Outcome: telephony.Failed}, telephony.Failed, telephony.ErrDialFailed, 503},
	} {
		t.Run(string(tc.outcome), func(t *testing.T) {
			f := newCall(t, tc.script)
			_, err := f.dialer.Dial(testCtx(t), telephony.DialRequest{Room: f.room, To: "+15557654321"})
			outcome := telephony.OutcomeOf(err)
			require.Equal(t, tc.outcome, outcome)
			require.ErrorIs(t, err, tc.sentinel)
			var de *telephony.DialError
			require.True(t, errors.As(err, &de))
			require.Equal(t, tc.code, de.SIPCode)
			require.Nil(t, f.dialer.Call(f.room), "nobody joined")
			ids, err := f.rooms.Participants(testCtx(t), f.room)
			require.NoError(t, err)
			require.Equal(t, []string{telephony.AgentIdentity}, ids)
		})
	}
}

func TestDialCanceledWhileRinging(t *testing.T) {
	f := newCall(t, Script{RingFor: time.Hour})
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	_, err := f.dialer.Dial(ctx, telephony.DialRequest{Room: f.room, To: "+15557654321", RingTimeout: time.Minute})
	outcome := telephony.OutcomeOf(err)
	require.Equal(t, telephony.Failed, outcome)
	require.ErrorIs(t, err, context.Canceled)
}

func TestSimulatedTransfer(t *testing.T) {
	f := newCall(t, Script{})
	leg, call := f.dial(t)
	// The agent must know the callee before it can see it leave: LiveKit
	// may fold a join and a leave in quick succession into one update.
	waitClosed(t, f.agent.PeerAudio(), "the callee's audio at the agent")
	require.NoError(t, f.dialer.Transfer(testCtx(t), leg, telephony.TransferRequest{To: "+15551230000"}))
	waitClosed(t, call.Callee.Gone(), "the transferred callee to leave the room")
	waitClosed(t, f.agent.PeerLeft(), "the agent to see the callee go")
	tr := f.dialer.Transfers()
	require.Len(t, tr, 1)
	require.Equal(t, "tel:+15551230000", tr[0].TransferTo)
	require.Equal(t, leg.Identity, tr[0].ParticipantIdentity)

	err := f.dialer.Transfer(testCtx(t), telephony.CallLeg{Room: "nope", Identity: "x"}, telephony.TransferRequest{To: "+15551230000"})
	require.ErrorIs(t, err, telephony.ErrTransferFailed)
}

func TestSimulatorIsRefusedInProduction(t *testing.T) {
	cfg := telephony.Config{URL: "ws://127.0.0.1:7880", APIKey: "k", APISecret: "s"}
	_, err := NewDialer(cfg, DialerOptions{Production: true})
	require.ErrorIs(t, err, ErrRefusedInProduction)
	d, err := NewDialer(cfg, DialerOptions{})
	require.NoError(t, err)
	d.Close()
}

func speechOrSkip(t *testing.T, text string) []int16 {
	t.Helper()
	for _, bin := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv(testenv.RequireStackVar) == "1" {
				t.Fatalf("%s is required under make test: %v", bin, err)
			}
			t.Skipf("%s not installed", bin)
		}
	}
	pcm, err := Speech(testCtx(t), text, rate)
	require.NoError(t, err)
	return pcm
}
