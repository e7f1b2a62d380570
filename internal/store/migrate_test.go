package store

import (
	"context"
	"testing"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	s := openStore(t, testenv.MongoURI(t), testenv.UniqueName(t))
	t.Cleanup(func() { require.NoError(t, s.DB().Drop(context.Background())) })
	ctx := t.Context()
	first, err := s.Migrate(ctx)
	require.NoError(t, err)
	second, err := s.Migrate(ctx)
	require.NoError(t, err, "idempotent")
	require.Len(t, second, len(first))
	for i := range first {
		require.Equal(t, first[i].What, second[i].What)
		switch {
		case first[i].What[:6] == "index ":
			require.Equal(t, StepCreated, first[i].State, first[i].What)
			require.Equal(t, StepExists, second[i].State, second[i].What)
		default:
			// FerretDB v1.24 answers collMod with NotImplemented.
			require.Equal(t, StepUnsupported, first[i].State, first[i].What)
			require.Equal(t, StepUnsupported, second[i].State, second[i].What)
		}
	}
	missing, err := s.MissingIndexes(ctx)
	require.NoError(t, err)
	require.Empty(t, missing)
}
