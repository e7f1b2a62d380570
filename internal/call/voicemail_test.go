package call

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/stretchr/testify/require"
)

// A machine's greeting: loud and not a tone.
func greeting(d time.Duration) []int16 { return withNoise(make([]int16, durationSamples(d)), 6000) }

func beep() []int16 { return calleesim.Tone(1000, 400*time.Millisecond, beepRate, 0.5) }

// Voicemail timed to the beep, on a fake clock: the machine is recognised
// during its greeting; the agent stops talking, the message is asked for
// at once and held while the greeting and the beep play, and starts right
// after the beep ends.
func TestLoopVoicemailMessageStartsAfterTheBeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{prompt: Prompt{VoicemailMessage: "Please call us back."}})
		synctest.Wait()
		answered := time.Now()
		l.say(greeting(4 * time.Second))
		l.say(beep())
		l.sess.emit(reply("r-greet", 3*time.Second)[:2]...) // the agent greets over the machine
		time.Sleep(time.Second)
		synctest.Wait()
		l.sess.emit(reply("r-greet", 0)[2:]...)
		l.sess.emit(toolReply("r-tool", "c1", "voicemail_detected", `{}`)...)
		synctest.Wait()
		require.Len(t, l.player.cleared(), 1, "the agent stopped talking over the greeting")
		l.sess.emit(reply("r-msg", 3*time.Second)...)
		time.Sleep(2 * time.Second) // still in the greeting
		synctest.Wait()
		require.True(t, l.player.heldAudio(), "the message waits")

		end := l.wait(t, 10*time.Second)
		require.Equal(t, store.CallVoicemail, end.status)
		beepEnd := answered.Add(4*time.Second + 400*time.Millisecond)
		start := l.player.soundAfterRelease()
		require.False(t, start.IsZero(), "the message played")
		require.GreaterOrEqual(t, start.Sub(beepEnd), time.Duration(0), "not over the beep")
		require.Less(t, start.Sub(beepEnd), 100*time.Millisecond, "right after it (the frame the beep ended in, and one tick)")
		require.Equal(t, causeVoicemail, l.a.details.Interruptions[0].Cause)
	})
}

// Recognised after the beep: the machine is recording, the message plays
// at once.
func TestLoopVoicemailAfterTheBeepPlaysAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{prompt: Prompt{VoicemailMessage: "Please call us back."}})
		synctest.Wait()
		l.say(greeting(2 * time.Second))
		l.say(beep())
		time.Sleep(3 * time.Second)
		synctest.Wait()
		l.sess.emit(toolReply("r-tool", "c1", "voicemail_detected", `{}`)...)
		l.sess.emit(reply("r-msg", 3*time.Second)[:2]...)
		synctest.Wait()
		require.False(t, l.player.heldAudio())
		require.Positive(t, l.player.Queued())
		l.sess.emit(reply("r-msg", 0)[2:]...)
		require.Equal(t, store.CallVoicemail, l.wait(t, 5*time.Second).status)
	})
}

// A machine without a beep starts recording when its greeting ends: a
// quiet line releases the message.
func TestLoopVoicemailWithoutABeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, loopSetup{prompt: Prompt{VoicemailMessage: "Please call us back."}})
		synctest.Wait()
		answered := time.Now()
		l.say(greeting(3 * time.Second))
		time.Sleep(time.Second)
		synctest.Wait()
		l.sess.emit(toolReply("r-tool", "c1", "voicemail_detected", `{}`)...)
		l.sess.emit(reply("r-msg", 2*time.Second)...)
		end := l.wait(t, 10*time.Second)
		require.Equal(t, store.CallVoicemail, end.status)
		greetingEnd := answered.Add(3 * time.Second)
		start := l.player.soundAfterRelease()
		require.InDelta(t, greetingOverAfter.Milliseconds(), start.Sub(greetingEnd).Milliseconds(), 100,
			"released once the line was quiet long enough")
	})
}
