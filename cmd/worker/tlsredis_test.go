package main

import (
	"testing"

	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// A rediss:// server whose CA is in no system store (Redis Cloud's case):
// the worker refuses it, then connects with REDIS_CA_CERT, verifying the
// certificate rather than skipping the check.
func TestRedisCACertAgainstTLSRedis(t *testing.T) {
	t.Parallel()
	r := testenv.StartTLSRedis(t)
	env := map[string]string{"REDIS_URL": r.URL()}

	res := runBin(t, env, "verify", "redis")
	require.Equal(t, 1, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "certificate signed by unknown authority")

	env["REDIS_CA_CERT"] = string(r.CA.CertPEM)
	res = runBin(t, env, "verify", "redis")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^redis\s+ping\s+OK`, res.stdout)
	res = runBin(t, env, "queue", "stats")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)

	// Another CA's certificate is no way in.
	env["REDIS_CA_CERT"] = string(testenv.NewCA(t).CertPEM)
	res = runBin(t, env, "verify", "redis")
	require.Equal(t, 1, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "certificate signed by unknown authority")
}
