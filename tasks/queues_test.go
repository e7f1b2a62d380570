package tasks_test

import (
	"strings"
	"testing"

	"github.com/docshield/voice-worker/tasks"
	"github.com/stretchr/testify/require"
)

func TestEveryTypeHasAQueueAndABudget(t *testing.T) {
	covered := map[string]bool{}
	for _, typ := range tasks.Types {
		q, ok := tasks.QueueOf(typ)
		require.True(t, ok, typ)
		require.True(t, tasks.Known(q), "%s runs on %s, which is not in QueueNames", typ, q)
		require.Contains(t, tasks.TypesOn(q), typ)
		require.GreaterOrEqual(t, tasks.MaxRetry(typ), 0, typ)
		covered[q] = true
	}
	for _, q := range tasks.QueueNames {
		require.True(t, covered[q], "queue %s has no task type", q)
		require.Positive(t, tasks.Queues[q], q)
	}
	require.Len(t, tasks.Queues, len(tasks.QueueNames))
	q, _ := tasks.QueueOf(tasks.TypeCallAnalyze)
	require.Equal(t, tasks.QueueAnalysis, q, "analysis needs OpenAI, so it has a queue of its own")
	_, ok := tasks.QueueOf("call:inbound")
	require.False(t, ok)
	require.False(t, tasks.Known("critical"))
}

func TestCheckStrictJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"call:outbound","payload":{"attempt_id":"a"}}`:      "",
		`{"a":[{"x":1},{"x":2}],"b":{"x":1}}`:                        "",
		`  {"a":1}  ` + "\n":                                         "",
		`{"inline":{"phone":"+15551234567","phone":"+15557654321"}}`: "inline.phone: key given twice",
		`{"type":"a","type":"b"}`:                                    "type: key given twice",
		`{"a":[{"k":1,"k":2}]}`:                                      "a[0].k: key given twice",
		`{"a":1} {"a":2}`:                                            "data after the JSON value",
		`{"a":1} trailing`:                                           "data after the JSON value",
		strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40):  "nested more than 32 levels",
		`{"a":`: "", // a syntax error is the decoder's to report
	} {
		err := tasks.CheckStrictJSON([]byte(in))
		if want == "" {
			require.NoError(t, err, in)
			continue
		}
		require.ErrorIs(t, err, tasks.ErrNotStrictJSON, in)
		require.ErrorContains(t, err, want, in)
	}
}
