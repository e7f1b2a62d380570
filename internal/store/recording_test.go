package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The partial-recording note is written by the claim's owner only, and
// cleared once the final object exists.
func TestPartialRecordingIsFenced(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	c := claimed(t, s, time.Minute)

	p := PartialRecording{Bucket: "b", Prefix: "recordings-partial/x/", Segments: 2, DurationMS: 60000, Bytes: 1234, FinalKey: "recordings/x.ogg"}
	require.NoError(t, s.RecordPartialRecording(ctx, c, p))
	got, err := s.GetPartialRecording(ctx, c.AttemptID)
	require.NoError(t, err)
	require.Equal(t, &p, got)

	stale := c
	stale.Fence = "not-the-fence"
	require.ErrorIs(t, s.RecordPartialRecording(ctx, stale, PartialRecording{Segments: 9}), ErrFenceMismatch)

	require.NoError(t, s.ClearPartialRecording(ctx, c))
	got, err = s.GetPartialRecording(ctx, c.AttemptID)
	require.NoError(t, err)
	require.Nil(t, got)
}
