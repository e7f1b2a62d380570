package call

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/stretchr/testify/require"
)

// The call's loop on a fake clock (testing/synctest) and fakes of the model
// session and the phone leg: barge-in, closing, the timers, failure
// counting, tools, shutdown and lost media, each in milliseconds and
// without a server. The same paths run against real LiveKit, FerretDB and
// the simulators in call_test.go.

// hold is long enough for anything the loop does at once to be done.
const hold = time.Second

func TestLoopGreetsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{prompt: Prompt{Greeting: "Hi, this is Ava."}})
		synctest.Wait()
		reqs := l.sess.requests()
		require.Len(t, reqs, 1)
		require.Contains(t, reqs[0], fmt.Sprintf(lineGreeting, "Hi, this is Ava."))
		l.cancel()
	})
}

// Every way a conversation ends, each from the same start: the greeting
// was said and heard.
func TestLoopEndings(t *testing.T) {
	type step func(t *testing.T, l *loop)
	say := func(evs ...realtime.Event) step {
		return func(t *testing.T, l *loop) { l.sess.emit(evs...); synctest.Wait() }
	}
	after := func(d time.Duration) step {
		return func(t *testing.T, l *loop) { time.Sleep(d); synctest.Wait() }
	}
	tool := func(name, args string) step { return say(toolReply("r-tool", "call-1", name, args)...) }
	for _, tc := range []struct {
		name   string
		setup  loopSetup
		steps  []step
		status store.CallStatus
		reason string // a part of the ending's reason
		// outcome for the campaign, and whether the agent was asked to
		// say a last line containing line.
		outcome string
		line    string
		within  time.Duration // of fake time after the last step
	}{
		{name: "end_call: the goodbye is heard, then the line drops",
			steps:  []step{tool("end_call", `{"reason":"done"}`)},
			status: store.CallCompleted, reason: "the agent ended the call: done", within: hold},
		{name: "the callee hangs up",
			steps:  []step{func(t *testing.T, l *loop) { close(l.leg.left) }},
			status: store.CallCompleted, reason: "callee hung up", within: hold},
		{name: "the agent loses its seat",
			steps:  []step{func(t *testing.T, l *loop) { close(l.leg.gone) }},
			status: store.CallFailed, reason: "the agent lost its seat in the room", within: hold},
		{name: "the model session drops",
			steps:  []step{func(t *testing.T, l *loop) { l.sess.end(realtime.ErrClosed) }},
			status: store.CallFailed, reason: "the model session ended", within: hold},
		{name: "two failed responses in a row",
			steps: []step{
				say(realtime.ResponseCreated{Response: realtime.Response{ID: "r1"}},
					realtime.ResponseDone{Response: realtime.Response{ID: "r1", Status: "failed"}}),
				say(realtime.ResponseCreated{Response: realtime.Response{ID: "r2"}},
					realtime.ResponseDone{Response: realtime.Response{ID: "r2", Status: "failed"}}),
			},
			status: store.CallFailed, reason: "the model failed 2 responses in a row", within: hold},
		{name: "silence: asked once, then hung up",
			setup:  loopSetup{timers: Timers{Silence: 15 * time.Second}},
			steps:  []step{after(16 * time.Second), say(reply("r-there", time.Second)...)},
			status: store.CallCompleted, reason: "silence", line: lineStillThere, within: 17 * time.Second},
		{name: "maximum duration: a wrap-up line, then the end",
			setup:  loopSetup{timers: Timers{MaxDuration: 10 * time.Minute}},
			steps:  []step{after(10 * time.Minute), say(reply("r-wrap", 2*time.Second)...)},
			status: store.CallCompleted, reason: "maximum call duration reached", line: lineWrapUp, within: 3 * time.Second},
		{name: "shutdown: a short goodbye, then interrupted",
			steps:  []step{func(t *testing.T, l *loop) { l.cancel(); synctest.Wait() }},
			status: store.CallInterrupted, reason: "the worker shut down", line: lineShutdown, within: DefaultShutdownLine + hold},
		{name: "opt_out: the number is listed at once and the call ends",
			steps:  []step{tool("opt_out", `{"reason":"asked"}`), say(reply("r-bye", time.Second)...)},
			status: store.CallCompleted, reason: "the callee opted out", outcome: "opted_out", within: 2 * time.Second},
		{name: "voicemail without a message to leave",
			steps:  []step{tool("voicemail_detected", `{}`)},
			status: store.CallVoicemail, reason: "no message to leave", within: hold},
		{name: "voicemail with a message",
			setup:  loopSetup{prompt: Prompt{VoicemailMessage: "Please call us back."}},
			steps:  []step{tool("voicemail_detected", `{}`), say(reply("r-vm", 4*time.Second)...)},
			status: store.CallVoicemail, reason: "message left", line: "Please call us back.",
			within: greetingOverAfter + 5*time.Second},
		{name: "transfer to a human",
			setup:  loopSetup{prompt: Prompt{TransferTo: "+442071838751"}},
			steps:  []step{tool("transfer_to_human", `{}`), say(reply("r-tr", time.Second)...)},
			status: store.CallCompleted, reason: "transferred", outcome: "transferred", within: 2 * time.Second},
		{name: "media lost: the connection to LiveKit stays down",
			steps:  []step{func(t *testing.T, l *loop) { l.leg.setReconnecting(time.Now()) }},
			status: store.CallFailed, reason: "media lost: the connection to LiveKit has been down", outcome: OutcomeMediaLost,
			within: DefaultMediaLoss + hold},
		{name: "media lost: no audio from the callee, who is still in the room when asked again",
			setup:  loopSetup{noCalleeAudio: true},
			status: store.CallFailed, reason: "while they are still in the room", outcome: OutcomeMediaLost,
			within: DefaultMediaLoss + PresenceRecheck + hold},
		{name: "media lost: no audio from the callee, and LiveKit cannot say where they are",
			setup:  loopSetup{noCalleeAudio: true, presenceErr: errors.New("connection refused")},
			status: store.CallFailed, reason: "LiveKit could not say whether they are there: connection refused",
			outcome: OutcomeMediaLost, within: DefaultMediaLoss + PresenceRecheck + hold},
		{name: "the callee left without LiveKit telling the agent: hung up, not media lost",
			setup:  loopSetup{noCalleeAudio: true, calleeGone: true},
			status: store.CallCompleted, reason: "callee hung up", within: DefaultMediaLoss + hold},
		{name: "the callee's BYE reached LiveKit late: hung up, not media lost",
			setup:  loopSetup{noCalleeAudio: true, calleeLeavesLate: true},
			status: store.CallCompleted, reason: "callee hung up", within: DefaultMediaLoss + PresenceRecheck + hold},
		{name: "LiveKit could not say, then says the callee left: hung up",
			setup:  loopSetup{noCalleeAudio: true, presenceErr: errors.New("timeout"), calleeLeavesLate: true},
			status: store.CallCompleted, reason: "callee hung up", within: DefaultMediaLoss + PresenceRecheck + hold},
		{name: "media lost while saying goodbye: the goodbye's ending does not stand",
			steps: []step{tool("end_call", `{"reason":"done"}`), say(reply("r-bye", 10*time.Second)...),
				func(t *testing.T, l *loop) { l.leg.setReconnecting(time.Now()) }},
			status: store.CallFailed, reason: "media lost", outcome: OutcomeMediaLost, within: DefaultMediaLoss + hold},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := startLoop(t, tc.setup)
				synctest.Wait()
				l.sess.emit(reply("r-greet", 2*time.Second)...)
				time.Sleep(3 * time.Second) // the greeting is heard
				synctest.Wait()
				for _, s := range tc.steps {
					s(t, l)
				}
				start := time.Now()
				end := l.wait(t, tc.within)
				require.Equal(t, tc.status, end.status, end.reason)
				require.Contains(t, end.reason, tc.reason)
				require.Equal(t, tc.outcome, end.outcome)
				require.LessOrEqual(t, time.Since(start), tc.within)
				if tc.line != "" {
					require.True(t, containsLine(l.sess.requests(), tc.line), "the agent was asked to say %q", tc.line)
				}
			})
		})
	}
}

func containsLine(reqs []string, line string) bool {
	for _, r := range reqs {
		if strings.Contains(r, line) {
			return true
		}
	}
	return false
}

// A brief loss of the connection, restored in time, is not the end.
func TestLoopRidesOutABriefReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{})
		synctest.Wait()
		l.leg.setReconnecting(time.Now())
		time.Sleep(DefaultMediaLoss - time.Second)
		l.leg.setReconnecting(time.Time{})
		time.Sleep(time.Minute)
		synctest.Wait()
		require.True(t, l.running(), "the call goes on after the connection came back")
		close(l.leg.left)
		require.Equal(t, store.CallCompleted, l.wait(t, hold).status)
	})
}

// Barge-in: the agent's queued voice goes at once, the model's item is
// truncated where the callee stopped hearing it, audio of the cut reply
// that arrives late is not played, and the interruption is recorded.
func TestLoopBargeInCutsWhereTheCalleeStoppedHearing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{})
		synctest.Wait()
		l.sess.emit(reply("r1", 5*time.Second)...)
		time.Sleep(1200 * time.Millisecond)
		synctest.Wait()
		l.sess.emit(realtime.SpeechStarted{ItemID: "in-1"})
		synctest.Wait()

		clears := l.player.cleared()
		require.Len(t, clears, 1)
		require.Equal(t, itemOf("r1"), clears[0].Item)
		require.InDelta(t, 1200, clears[0].Played.Milliseconds(), 40, "played until the callee spoke")
		require.InDelta(t, 3800, clears[0].Dropped.Milliseconds(), 40, "the rest is dropped")
		require.Len(t, l.sess.truncated, 1)
		require.InDelta(t, 1200, l.sess.truncated[0].PlayedMS, 40, "the model hears where the callee stopped hearing")
		require.Zero(t, l.sess.cancels, "the model's own detection cancels its response itself")

		// Late audio of the cut reply is not played.
		l.sess.emit(realtime.AudioDelta{ResponseID: "r1", ItemID: itemOf("r1"), PCM: make([]int16, durationSamples(time.Second))})
		synctest.Wait()
		require.Zero(t, l.player.Queued())

		close(l.leg.left)
		l.wait(t, hold)
		require.Len(t, l.a.details.Interruptions, 1)
		in := l.a.details.Interruptions[0]
		require.Equal(t, causeCallee, in.Cause)
		require.Equal(t, itemOf("r1"), in.ItemID)
		require.InDelta(t, 3800, in.DroppedMS, 40)
	})
}

// Once the call is ending, the last line is said in full: the callee
// speaking over it does not cut it.
func TestLoopLastLineIsNotInterruptible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{timers: Timers{MaxDuration: time.Minute}})
		synctest.Wait()
		l.sess.emit(reply("r-greet", time.Second)...)
		time.Sleep(time.Minute)
		synctest.Wait()
		require.True(t, containsLine(l.sess.requests(), lineWrapUp))
		l.sess.emit(reply("r-wrap", 3*time.Second)[:2]...) // created, audio
		time.Sleep(time.Second)
		synctest.Wait()
		l.sess.emit(realtime.SpeechStarted{ItemID: "in-1"})
		synctest.Wait()
		require.Empty(t, l.player.cleared()[1:], "only the wrap-up's own cut of what played before")
		l.sess.emit(reply("r-wrap", 0)[2:]...) // done
		end := l.wait(t, 3*time.Second)
		require.Equal(t, "maximum call duration reached", end.reason)
	})
}

// One failed response is asked for again with the same extra line; a
// completed one resets the count.
func TestLoopRetriesAFailedResponseOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{prompt: Prompt{Greeting: "Hello."}})
		synctest.Wait()
		fail := func(id string) {
			l.sess.emit(realtime.ResponseCreated{Response: realtime.Response{ID: id}},
				realtime.ResponseDone{Response: realtime.Response{ID: id, Status: "failed"}})
			synctest.Wait()
		}
		fail("r1")
		reqs := l.sess.requests()
		require.Len(t, reqs, 2, "asked again")
		require.Equal(t, reqs[0], reqs[1], "with the greeting's line again")
		l.sess.emit(reply("r2", time.Second)...)
		synctest.Wait()
		fail("r3")
		require.True(t, l.running(), "a completed response in between resets the count")
		fail("r4")
		require.Equal(t, store.CallFailed, l.wait(t, hold).status)
	})
}

// Arguments the model got wrong go back to it as the tool's output, the
// call goes on, and the tool call is recorded.
func TestLoopBadToolArgumentsGoBackToTheModel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{})
		synctest.Wait()
		l.sess.emit(toolReply("r1", "call-1", "set_disposition", `{"disposition":"maybe"}`)...)
		synctest.Wait()
		require.True(t, strings.HasPrefix(l.sess.output("call-1"), "error: "), l.sess.output("call-1"))
		require.Len(t, l.sess.requests(), 2, "the model is asked to go on")
		require.True(t, l.running())
		close(l.leg.left)
		l.wait(t, hold)
		require.Equal(t, []string{"set_disposition"}, l.calls.toolNames())
	})
}

// opt_out writes the do-not-call entry the moment it arrives, before the
// model's response is even done.
func TestLoopOptOutListsTheNumberAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{prompt: Prompt{Phone: "+442071838759"}})
		synctest.Wait()
		l.sess.emit(realtime.ResponseCreated{Response: realtime.Response{ID: "r1"}},
			realtime.FunctionCall{ResponseID: "r1", CallID: "c1", Name: "opt_out", Arguments: `{}`})
		synctest.Wait()
		listed, err := l.calls.IsDoNotCall(t.Context(), "+442071838759")
		require.NoError(t, err)
		require.True(t, listed)
		l.cancel()
	})
}

// A failed transfer says so and the call goes on.
func TestLoopFailedTransferResumesTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{prompt: Prompt{TransferTo: "+442071838751"}})
		l.dialer.transferErr = errors.New("target busy")
		synctest.Wait()
		l.sess.emit(toolReply("r1", "c1", "transfer_to_human", `{}`)...)
		l.sess.emit(reply("r2", time.Second)...)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		require.Equal(t, []string{"+442071838751"}, l.dialer.transfers)
		require.True(t, containsLine(l.sess.requests(), lineNoTransfer))
		require.True(t, l.running())
		close(l.leg.left)
		require.Equal(t, "callee hung up", l.wait(t, hold).reason)
	})
}

// An attempt reaped under a live call stops it, and nothing more is
// written to it.
func TestLoopStopsWhenTheClaimIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{lease: 30 * time.Second})
		synctest.Wait()
		l.calls.loseFence()
		end := l.wait(t, 30*time.Second)
		require.True(t, end.fenceLost)
	})
}

// send_dtmf presses the keys on the line, says so in the transcript, and
// leaves the model listening (no reply of its own over the phone tree).
func TestLoopSendDTMF(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{})
		synctest.Wait()
		l.sess.emit(reply("r-greet", time.Second)...)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		l.sess.emit(toolReply("r1", "c1", "send_dtmf", `{"digits":"2#"}`)...)
		synctest.Wait()
		require.Equal(t, "2#", l.leg.pressed())
		require.Contains(t, l.sess.output("c1"), "Pressed 2#")
		require.Len(t, l.sess.requests(), 1, "only the greeting: the model listens to the menu")
		close(l.leg.left)
		l.wait(t, hold)
		var texts []string
		for _, tn := range l.calls.turns {
			texts = append(texts, tn.Text)
		}
		require.Contains(t, texts, "[pressed 2#]")
	})
}
