package main

import (
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/elect"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// `verify fleet` with Redis configured says who holds the fleet's leases,
// so the runbook needs no redis-cli: the reporter always, the scaler with
// AUTOSCALE. Nobody holding one is a warning, not a failure.
func TestVerifyFleetShowsTheLeaseHolders(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	env := map[string]string{"MONGODB_URI": "mongodb://127.0.0.1:1", "REDIS_URL": r.URL()}
	res := runBin(t, env, "verify", "fleet")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^fleet\s+leader reporter\s+WARN\s+nobody holds it`, res.stdout)
	require.NotContains(t, res.stdout, "leader scaler", "no scaler without AUTOSCALE")

	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Set(t.Context(), elect.KeyPrefix+"reporter", "worker.3/17#5f2a", time.Minute).Err())
	env["AUTOSCALE"], env["HEROKU_API_KEY"], env["HEROKU_APP_NAME"], env["FLEET_MAX_DYNOS"] = "true", "k", "app", "4"
	res = runBin(t, env, "verify", "fleet")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^fleet\s+leader reporter\s+OK\s+held by worker\.3/17, [0-9.]+s left on its lease`, res.stdout)
	require.Regexp(t, `(?m)^fleet\s+leader scaler\s+WARN\s+nobody holds it`, res.stdout)
}
