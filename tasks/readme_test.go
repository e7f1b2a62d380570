package tasks_test

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/docshield/voice-worker/tasks"
	"github.com/stretchr/testify/require"
)

// The README's task examples are the contract other teams copy; each block
// fenced as "json task" must decode and validate with the real code.
func TestReadmeTaskExamplesAreValid(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```json task\n(.*?)```").FindAllSubmatch(b, -1)
	seen := map[string]bool{}
	for _, m := range blocks {
		var tf struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(m[1], &tf), "%s", m[1])
		p, ok := tasks.ForType(tf.Type)
		require.True(t, ok, "unknown type %q", tf.Type)
		require.NoError(t, tasks.Unmarshal(tf.Payload, p), "%s", m[1])
		seen[tf.Type] = true
	}
	for _, typ := range tasks.Types {
		require.True(t, seen[typ], "README has no example for %s", typ)
	}
}
