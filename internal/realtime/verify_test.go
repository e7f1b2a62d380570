package realtime_test

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
)

func TestVerify(t *testing.T) {
	_, base := startSim(t, realtimesim.Script{}, realtimesim.WithAPIKey("sk-good"), realtimesim.WithModels("gpt-realtime", "gpt-realtime-mini"))
	ctx := context.Background()

	require.NoError(t, realtime.Verify(ctx, base, "sk-good", "gpt-realtime"))
	require.NoError(t, realtime.Verify(ctx, base+"/", "sk-good", "gpt-realtime-mini"))

	err := realtime.Verify(ctx, base, "sk-bad-secret", "gpt-realtime")
	require.ErrorIs(t, err, realtime.ErrUnauthorized)
	require.ErrorContains(t, err, "OPENAI_API_KEY was rejected (HTTP 401)")
	require.NotContains(t, err.Error(), "sk-bad-secret")

	err = realtime.Verify(ctx, base, "sk-good", "gpt-nope")
	require.ErrorIs(t, err, realtime.ErrModelNotFound)
	require.ErrorContains(t, err, `model "gpt-nope" (OPENAI_REALTIME_MODEL)`)

	require.ErrorContains(t, realtime.Verify(ctx, "ftp://x", "k", "m"), "OPENAI_BASE_URL")
	require.ErrorContains(t, realtime.Verify(ctx, base, "", "m"), "OPENAI_API_KEY is empty")
	require.ErrorContains(t, realtime.Verify(ctx, base, "k", ""), "OPENAI_REALTIME_MODEL is empty")
}

func TestVerifyUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	err = realtime.Verify(context.Background(), "http://"+addr+"/v1", "k", "gpt-realtime")
	require.ErrorContains(t, err, "GET http://"+addr+"/v1/models/gpt-realtime")
}
