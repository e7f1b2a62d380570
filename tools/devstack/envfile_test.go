package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The env file must give the shell exactly the values devstack meant,
// whatever characters a path or secret holds.
func TestEnvFileRoundTripsThroughShell(t *testing.T) {
	vars := []envVar{
		{"APP_ENV", "development"},
		{"REDIS_URL", "redis://127.0.0.1:6379/0"},
		{"DEVSTACK_DIR", "/tmp/dir with space/it's"},
		{"TRICKY", `a$b"c\d` + "`e`"},
		{"EMPTY", ""},
	}
	path := filepath.Join(t.TempDir(), "devstack.env")
	require.NoError(t, writeEnvFile(path, vars))

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "env file holds credentials")

	out, err := exec.Command("sh", "-c", `set -a; . "$1"; set +a; env -0`, "sh", path).Output()
	require.NoError(t, err)
	got := map[string]string{}
	for _, kv := range strings.Split(string(out), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for _, v := range vars {
		require.Contains(t, got, v.Key)
		require.Equal(t, v.Value, got[v.Key], v.Key)
	}
}

// Plain values stay unquoted so tools that read KEY=VALUE literally agree.
func TestEnvFilePlainValuesUnquoted(t *testing.T) {
	text := formatEnv([]envVar{{"S3_ENDPOINT", "http://127.0.0.1:9000"}, {"AWS_SECRET_ACCESS_KEY", "abc123"}})
	require.Contains(t, text, "\nS3_ENDPOINT=http://127.0.0.1:9000\n")
	require.Contains(t, text, "\nAWS_SECRET_ACCESS_KEY=abc123\n")
}

func TestMergeEnvOverrides(t *testing.T) {
	got := mergeEnv([]string{"A=1", "REDIS_URL=redis://elsewhere", "B=2"}, []envVar{{"REDIS_URL", "redis://here"}, {"C", "3"}})
	require.Equal(t, []string{"A=1", "B=2", "REDIS_URL=redis://here", "C=3"}, got)
}

func TestSelectServices(t *testing.T) {
	names := func(svcs []service) []string {
		var out []string
		for _, s := range svcs {
			out = append(out, s.name())
		}
		return out
	}
	svcs, err := selectServices("livekit, ferretdb,sip", backendSQLite)
	require.NoError(t, err)
	require.Equal(t, []string{"redis", "minio"}, names(svcs))

	_, err = selectServices("postgres", backendSQLite)
	require.ErrorContains(t, err, `unknown service "postgres"`)

	// PostgreSQL comes with FerretDB on it, started first.
	svcs, err = selectServices("livekit,sip", backendPostgreSQL)
	require.NoError(t, err)
	require.Equal(t, []string{"redis", "postgres", "mongo", "minio"}, names(svcs))
	require.Same(t, envLookup(svcs, "postgres"), envLookup(svcs, "mongo").(*mongoService).pg)
	svcs, err = selectServices("mongo", backendPostgreSQL)
	require.NoError(t, err)
	require.Nil(t, envLookup(svcs, "postgres"), "no FerretDB, no PostgreSQL")

	_, err = selectServices("", "mysql")
	require.ErrorContains(t, err, `--mongo-backend (or DEVSTACK_MONGO_BACKEND): "mysql"`)
}
