package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// `verify fleet` is arithmetic on the settings: at 100 dynos of 40 calls
// with a pool of 50, an M10 (1,500 connections per node) is far too small
// and Redis's 10,000 a little; at 10 dynos both fit. Warnings do not fail
// the command; a setting out of range does, naming it.
func TestVerifyFleetWarnsWhenTheFleetOutgrowsTheServices(t *testing.T) {
	t.Parallel()
	env := map[string]string{"MONGODB_URI": "mongodb://127.0.0.1:1", "WORKER_CONCURRENCY": "40",
		"MONGODB_MAX_POOL_SIZE": "50", "FLEET_MAX_DYNOS": "100"}
	res := runBin(t, env, "verify", "fleet")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	require.Regexp(t, `(?m)^fleet\s+mongodb connections\s+WARN\s+100 dynos × 52 \(pool 50 \+ 2 monitoring\) = 5200 of 1490`, res.stdout)
	require.Regexp(t, `(?m)^fleet\s+redis connections\s+WARN\s+100 dynos × 101`, res.stdout)
	require.Regexp(t, `(?m)^fleet\s+dial rate\s+WARN\s+DIAL_RATE_PER_SECOND not set`, res.stdout)

	env["FLEET_MAX_DYNOS"] = "10"
	env["DIAL_RATE_PER_SECOND"] = "5"
	res = runBin(t, env, "verify", "--json", "fleet")
	require.Equal(t, 0, res.code, res.stdout+res.stderr)
	var out struct {
		Findings []struct{ Item, Level, Detail string } `json:"findings"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &out))
	for _, f := range out.Findings {
		require.Equal(t, "OK", f.Level, "%s: %s", f.Item, f.Detail)
	}

	env["FLEET_MAX_DYNOS"] = "0"
	env["AUTOSCALE"] = "true"
	res = runBin(t, env, "verify", "fleet")
	require.Equal(t, 1, res.code)
	for _, v := range []string{"FLEET_MAX_DYNOS", "HEROKU_API_KEY", "HEROKU_APP_NAME"} {
		require.Contains(t, res.stdout, v)
	}
}
