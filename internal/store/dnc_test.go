package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestDoNotCallAddTwiceKeepsOneEntry(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	first := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	listed, err := s.IsDoNotCall(ctx, "+14155550100")
	require.NoError(t, err)
	require.False(t, listed)

	require.NoError(t, s.AddDoNotCall(ctx, DoNotCall{Phone: "+14155550100", Reason: "asked on call", Source: "agent:opt_out", CreatedAt: first}))
	require.NoError(t, s.AddDoNotCall(ctx, DoNotCall{Phone: "+14155550100", Reason: "again", Source: "operator"}))

	var entries []DoNotCall
	cur, err := s.DB().Collection(CollDoNotCall).Find(ctx, bson.D{{Key: "phone", Value: "+14155550100"}})
	require.NoError(t, err)
	require.NoError(t, cur.All(ctx, &entries))
	require.Len(t, entries, 1)
	require.Equal(t, "asked on call", entries[0].Reason, "the first request is the one kept")
	require.Equal(t, "agent:opt_out", entries[0].Source)
	require.True(t, first.Equal(entries[0].CreatedAt))

	listed, err = s.IsDoNotCall(ctx, "+14155550100")
	require.NoError(t, err)
	require.True(t, listed)
	listed, err = s.IsDoNotCall(ctx, "+14155550101")
	require.NoError(t, err)
	require.False(t, listed)
}

func TestDoNotCallConcurrentAddsOfANewNumber(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	errs := collectErrors(10, func(int) error {
		return s.AddDoNotCall(ctx, DoNotCall{Phone: "+14155550199", Source: "backend"})
	})
	for _, err := range errs {
		require.NoError(t, err)
	}
	n, err := s.DB().Collection(CollDoNotCall).CountDocuments(ctx, bson.D{{Key: "phone", Value: "+14155550199"}})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func TestDoNotCallRejectsNonE164(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := t.Context()
	require.ErrorContains(t, s.AddDoNotCall(ctx, DoNotCall{Phone: "415-555-0100"}), "DoNotCall.Phone")
	_, err := s.IsDoNotCall(ctx, "415-555-0100")
	require.ErrorContains(t, err, "E.164", "a malformed number must not read as 'not listed'")
}
