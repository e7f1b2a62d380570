package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFlagsAnywhere(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	e := env{stdout: &out, stderr: &out}
	for _, args := range [][]string{{"stats", "--json"}, {"--json", "stats"}} {
		fs := newFlags(e, "queue", "queue stats [--json]")
		asJSON := fs.Bool("json", false, "")
		code, done := parse(e, fs, args)
		require.False(t, done, "%v: %s", args, out.String())
		require.Equal(t, 0, code)
		require.True(t, *asJSON, "%v", args)
		require.Equal(t, []string{"stats"}, fs.Args(), "%v", args)
	}
	fs := newFlags(e, "queue", "queue stats [--json]")
	code, done := parse(e, fs, []string{"stats", "--nope"})
	require.True(t, done)
	require.Equal(t, 2, code)
}
