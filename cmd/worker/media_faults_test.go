package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// Issue 10.3: with LiveKit killed mid-call, the calls ran a minute more
// against a dead room and ended completed with recordings of nothing. The
// real binary, its calls on a private LiveKit that is then killed: every
// call ends within 10 s, failed with outcome media_lost, never completed.
func TestLiveKitKilledMidCallEndsTheCallsAsMediaLost(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	lk := testenv.StartLiveKit(t)
	env := callEnv(t, r, longCall)
	env["LIVEKIT_URL"], env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"] = lk.Env.URL, lk.Env.APIKey, lk.Env.APISecret
	client, _ := asynqClients(t, r)
	st := openCallStore(t, env)
	ctx := context.Background()

	w := startWorker(t, env)
	ids := []string{"media-lost-0001", "media-lost-0002"}
	for _, id := range ids {
		enqueueInline(t, client, id)
	}
	waitFor(t, "both calls answered and talking", func() bool {
		for _, id := range ids {
			c, err := st.GetCall(ctx, id)
			if err != nil || c.Status != store.CallInProgress || len(c.Transcript) == 0 {
				return false
			}
		}
		return true
	})
	lk.Kill()
	killed := time.Now()

	waitFor(t, "both calls ended", func() bool {
		for _, id := range ids {
			c, err := st.GetCall(ctx, id)
			if err != nil || !c.Status.Terminal() {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		c, err := st.GetCall(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.CallFailed, c.Status, id)
		require.Equal(t, "media_lost", c.Outcome, id)
		require.Contains(t, c.Error, "media lost", id)
		// Ended within 10 s of the kill (the end is stamped when decided;
		// the write may come later on a busy machine).
		require.Less(t, c.EndedAt.Sub(killed), 10*time.Second, "%s ended %s after the kill", id, c.EndedAt.Sub(killed))
		require.Equal(t, 1, c.Claims, "never redialled")
		t.Logf("%s ended %s after the kill: %s", id, c.EndedAt.Sub(killed).Round(time.Millisecond), c.Error)
	}
	require.NoError(t, w.sigterm(t))
	out := w.out.String()
	require.Equal(t, len(ids), strings.Count(out, `"outcome":"media_lost"`), "one call.ended each")
	require.NotContains(t, out, fmt.Sprintf(`"status":"%s"`, store.CallCompleted))
}
