package call_test

import (
	"context"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
)

// halfClaim leaves an attempt as a worker does whose claim won the ledger
// but whose start never reached the call document (it died, or the write
// timed out): queued, under owner's claim until leaseEnd.
func halfClaim(t *testing.T, st *store.Store, id, owner string, leaseEnd time.Time) string {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, st.CreateAttempt(ctx, &store.Call{ID: id, Attempt: 1, Phone: testenv.DaytimeNumber(t),
		CampaignID: bson.NewObjectID(), ContactID: bson.NewObjectID()}))
	fence := "fence-" + id
	_, err := st.DB().Collection(store.CollCallClaims).InsertOne(ctx, bson.M{
		"_id": id, "owner": owner, "fence": fence, "claimed_at": time.Now().Add(-time.Minute), "lease_expires_at": leaseEnd,
	})
	require.NoError(t, err)
	return fence
}

// An attempt claimed but never started was never dialed. Whether the
// reaper or the next delivery of its task finds it after the lease, it
// ends cancelled, not interrupted, and its analysis is asked for, so the
// contact is due again now (an interrupted attempt would use up one of
// the contact's attempts, and wait for the dispatcher's repair round).
// The owner itself, trying again inside the lease, resumes its claim and
// places the call once. Real FerretDB.
func TestUnstartedClaimIsCancelledOrResumedNeverLost(t *testing.T) {
	st := openStore(t)
	ctx := testCtx(t)
	id := testenv.UniqueName(t)
	lapsed := time.Now().Add(-time.Second)

	viaReaper := id + "-reaper"
	halfClaim(t, st, viaReaper, "dead-worker", lapsed)
	analyze := &enqueuer{}
	call.NewReaper(call.ReaperOptions{Store: st, Analyze: analyze, Interval: time.Hour, Logger: zap.NewNop()}).Pass(ctx)
	c, err := st.GetCall(ctx, viaReaper)
	require.NoError(t, err)
	require.Equal(t, store.CallCancelled, c.Status, c.Error)
	require.Contains(t, c.Error, "dead-worker")
	require.Equal(t, []string{viaReaper}, analyze.attempts(), "its contact is settled now")

	viaRetry := id + "-retry"
	halfClaim(t, st, viaRetry, "dead-worker", lapsed)
	runner := &countingRunner{}
	h := &call.Handler{Calls: st, Runner: runner, Queue: analyze, Owner: "worker-b"}
	require.NoError(t, h.ProcessTask(ctx, task(t, tasks.CallOutbound{AttemptID: viaRetry})))
	c, err = st.GetCall(ctx, viaRetry)
	require.NoError(t, err)
	require.Equal(t, store.CallCancelled, c.Status, c.Error)
	require.Equal(t, int32(0), runner.runs.Load(), "never dialed by another owner")
	require.Equal(t, []string{viaReaper, viaRetry}, analyze.attempts())

	resumed := id + "-resumed"
	fence := halfClaim(t, st, resumed, "worker-a", time.Now().Add(time.Minute))
	h = &call.Handler{Calls: st, Runner: runner, Queue: analyze, Owner: "worker-a"}
	require.NoError(t, h.ProcessTask(ctx, task(t, tasks.CallOutbound{AttemptID: resumed})))
	require.NoError(t, h.ProcessTask(ctx, task(t, tasks.CallOutbound{AttemptID: resumed})), "a duplicate delivery")
	require.Equal(t, int32(1), runner.runs.Load(), "the owner's retry places the call, once")
	owner, ok := runner.claims.Load(fence)
	require.True(t, ok, "under the ledger's fence")
	require.Equal(t, "worker-a", owner)
	c, err = st.GetCall(context.Background(), resumed)
	require.NoError(t, err)
	require.Equal(t, store.CallDialing, c.Status)
	require.Len(t, analyze.attempts(), 2)
}
