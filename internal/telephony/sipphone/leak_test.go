package sipphone

import (
	"runtime"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/stretchr/testify/require"
)

// Every goroutine of a call (the phone's, sipgo's and diago's) ends once
// the call is over and the phone and the caller are closed.
func TestCallsLeaveNoGoroutineBehind(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("calls", func(t *testing.T) {
		ctx := testCtx(t)
		p := newPhone(t, Config{Default: Talk(calleesim.Tone(600, 200*time.Millisecond, SampleRate, 0.3))})
		require.NoError(t, p.Handle("+15550100002", Busy()))
		require.NoError(t, p.Handle("+15550100003", HangUpMidSentence(100*time.Millisecond)))
		c := newCaller(t)

		l, err := c.dial(ctx, t, p, number, dialOpts{})
		require.NoError(t, err)
		talked, err := p.WaitCall(ctx, number)
		require.NoError(t, err)
		l.say(ctx, t, calleesim.Tone(440, 200*time.Millisecond, SampleRate, 0.3))
		_, err = talked.Wait(ctx, func(r Record) bool { return len(r.Said) == 1 && !r.Said[0].End.IsZero() })
		require.NoError(t, err)
		require.NoError(t, l.d.Hangup(ctx))
		waitDone(t, talked)

		_, err = c.dial(ctx, t, p, "+15550100002", dialOpts{})
		require.Equal(t, 486, status(err))

		l, err = c.dial(ctx, t, p, "+15550100003", dialOpts{})
		require.NoError(t, err)
		l.mouth.say(calleesim.Tone(440, 5*time.Second, SampleRate, 0.3))
		waitClosed(t, l.hungUp(), "the phone's BYE")
		// t.Cleanup closes the caller's legs, the caller and the phone.
	})
	deadline := time.Now().Add(20 * time.Second)
	for n := runtime.NumGoroutine(); n > before; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left behind (before: %d):\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
