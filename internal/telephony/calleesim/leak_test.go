package calleesim

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every goroutine a call starts (ours and the SDK's) ends once the call is
// hung up and its participants closed. Idle HTTP keep-alive connections of
// the API client are the only survivors, and they are the client's, not
// the call's.
func TestCallLeavesNoGoroutineBehind(t *testing.T) {
	before := callGoroutines()
	t.Run("call", func(t *testing.T) {
		f := newCall(t, Script{Steps: []Step{WaitForAgentTurn(), Say(Tone(600, 300*time.Millisecond, rate, 0.3))}})
		ctx := testCtx(t)
		start := time.Now()
		leg, call := f.dial(t)
		require.NoError(t, f.agent.WaitListening(ctx))
		require.NoError(t, f.agent.Player().Write("greeting", Tone(440, 300*time.Millisecond, rate, 0.3)))
		_, err := f.heard.WaitSpeech(ctx, start)
		require.NoError(t, err)
		require.NoError(t, f.rooms.Hangup(ctx, leg))
		waitClosed(t, call.Done(), "the script to end")
		// t.Cleanup closes the agent and the dialer.
	})
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n := callGoroutines(); n > before; n = callGoroutines() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left behind (before the call: %d):\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}

func callGoroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "net/http.(*persistConn)") {
			n++
		}
	}
	return n
}
