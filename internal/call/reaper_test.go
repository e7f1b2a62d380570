package call_test

import (
	"context"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A worker that dies mid-call stops renewing its lease; the reaper settles
// the attempt as interrupted (never redialled) and hangs up its room, so
// the callee's line does not stay open with nobody on our side; a second
// pass does nothing more. Real FerretDB and LiveKit.
func TestReaperSettlesLapsedCallsAndHangsUp(t *testing.T) {
	st := openStore(t)
	ctx := testCtx(t)
	id := testenv.UniqueName(t)
	dead, live := id+"-dead", id+"-live"
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: dead, Attempt: 1, Phone: "+15551234567"}))
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: live, Attempt: 1, Phone: "+15557654321"}))
	claim, err := st.ClaimAttempt(ctx, dead, "dead-worker", time.Second)
	require.NoError(t, err)
	_, err = st.ClaimAttempt(ctx, live, "live-worker", time.Hour)
	require.NoError(t, err)

	// The dead worker's call: a room with the callee still in it.
	tcfg := telephony.Config{URL: testenv.Get(t, "LIVEKIT_URL"), APIKey: testenv.Get(t, "LIVEKIT_API_KEY"),
		APISecret: testenv.Get(t, "LIVEKIT_API_SECRET")}
	rooms, err := telephony.NewRooms(tcfg, zap.NewNop())
	require.NoError(t, err)
	room, err := rooms.Create(ctx, dead)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rooms.Delete(context.Background(), room) })
	callee, err := telephony.Join(ctx, tcfg, room, telephony.ParticipantOptions{
		Identity: telephony.DefaultCalleeIdentity, Peer: telephony.AgentIdentity})
	require.NoError(t, err)
	t.Cleanup(callee.Close)
	require.NoError(t, st.Transition(ctx, claim, store.CallInProgress, store.CallFields{Room: room}))

	core, logs := observer.New(zapcore.DebugLevel)
	analyze := &enqueuer{}
	r := call.NewReaper(call.ReaperOptions{Store: st, Rooms: rooms, Analyze: analyze, Interval: time.Hour,
		Logger: zap.New(core), Now: func() time.Time { return time.Now().Add(time.Minute) }})
	r.Pass(ctx)
	r.Pass(ctx)

	c, err := st.GetCall(ctx, dead)
	require.NoError(t, err)
	require.Equal(t, store.CallInterrupted, c.Status)
	l, err := st.GetCall(ctx, live)
	require.NoError(t, err)
	require.Equal(t, store.CallDialing, l.Status, "a call whose owner renews is left alone")
	require.Equal(t, 1, logs.FilterMessage("call.reaped").Len())
	require.Equal(t, 1, logs.FilterMessage("call.hung_up").Len())
	select {
	case <-callee.Disconnected():
	case <-ctx.Done():
		t.Fatal("the callee is still in the reaped call's room")
	}
	exists, err := rooms.Exists(ctx, room)
	require.NoError(t, err)
	require.False(t, exists)
	require.Empty(t, analyze.attempts(), "an interrupted call's contact is settled by the campaign")

	// Start/Shutdown own the goroutine.
	r.Start()
	r.Shutdown()
}

// memOutbox is an EndOutbox in memory.
type memOutbox struct{ ends map[string]call.PendingEnd }

func (o *memOutbox) Put(_ context.Context, p call.PendingEnd) error {
	o.ends[p.Claim.AttemptID] = p
	return nil
}

func (o *memOutbox) List(_ context.Context, limit int) ([]call.PendingEnd, error) {
	var out []call.PendingEnd
	for _, p := range o.ends {
		out = append(out, p)
	}
	return out[:min(limit, len(out))], nil
}

func (o *memOutbox) Delete(_ context.Context, id string) error {
	delete(o.ends, id)
	return nil
}

// An end put aside while MongoDB was away is written by the next pass
// that finds MongoDB back, and the analysis asked for; one whose claim is
// no longer the caller's is dropped, not forced.
func TestReaperWritesPendingEnds(t *testing.T) {
	st := openStore(t)
	ctx := testCtx(t)
	id := testenv.UniqueName(t)
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: id, Attempt: 1, Phone: "+15551234567"}))
	claim, err := st.ClaimAttempt(ctx, id, "worker-1", time.Hour)
	require.NoError(t, err)
	stale := claim
	stale.AttemptID, stale.Fence = id+"-other", "stale"

	out := &memOutbox{ends: map[string]call.PendingEnd{}}
	end := store.EndRecord{Status: store.CallCompleted, At: time.Now(), Details: store.CallDetails{EndReason: "callee hung up"}}
	require.NoError(t, out.Put(ctx, call.PendingEnd{Claim: claim, End: end, Since: time.Now()}))
	require.NoError(t, out.Put(ctx, call.PendingEnd{Claim: stale, End: end, Since: time.Now()}))
	analyze := &enqueuer{}
	r := call.NewReaper(call.ReaperOptions{Store: st, Ends: out, Analyze: analyze, Interval: time.Hour})
	r.Pass(ctx)

	c, err := st.GetCall(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.CallCompleted, c.Status)
	require.Equal(t, []string{id}, analyze.attempts())
	require.Empty(t, out.ends, "both were settled: one written, one superseded")
}
