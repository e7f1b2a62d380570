package call_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/producer"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A second delivery of an inline call whose payload differs from the
// attempt already written (another phone number) is a conflict: logged as
// such, refused for good, and the first attempt is neither changed nor
// dialled twice. A true duplicate (same payload) still does nothing.
func TestInlineConflictIsLoggedAndRefused(t *testing.T) {
	st := openStore(t)
	core, logs := observer.New(zapcore.DebugLevel)
	ctx := logging.WithContext(context.Background(), zap.New(core))
	runner := &countingRunner{}
	h := &call.Handler{Calls: st, Runner: runner, Owner: "w1", Now: func() time.Time { return time.Unix(1_800_000_000, 0) }} // 17:00 in Tokyo
	first := tasks.InlineCall{
		AttemptID: "oneoff-conflict-1", Phone: "+81355550100", Instructions: "Confirm the appointment.",
		Variables: map[string]string{"dob": "1961-04-09"},
	}
	require.NoError(t, h.ProcessTask(ctx, task(t, tasks.CallOutbound{Inline: &first})))
	require.NoError(t, h.ProcessTask(ctx, task(t, tasks.CallOutbound{Inline: &first})), "a true duplicate is fine")

	other := first
	other.Phone = "+81355550199"
	other.Variables = map[string]string{"dob": "1970-01-01"}
	err := h.ProcessTask(ctx, task(t, tasks.CallOutbound{Inline: &other}))
	var conflict *producer.InlineConflictError
	require.ErrorAs(t, err, &conflict)
	require.ErrorIs(t, err, asynq.SkipRetry, "archived with the reason, not retried")
	require.Equal(t, []string{"phone", "variables"}, conflict.Fields)
	require.NotContains(t, err.Error(), "5550199", "no phone number in the reason")
	require.NotContains(t, err.Error(), "1970")

	lines := logs.FilterMessage("call.conflict").All()
	require.Len(t, lines, 1)
	require.Equal(t, []any{"phone", "variables"}, lines[0].ContextMap()["fields"])
	require.Equal(t, int32(1), runner.runs.Load(), "dialled once, for the first payload")
	c, err := st.GetCall(context.Background(), "oneoff-conflict-1")
	require.NoError(t, err)
	require.Equal(t, "+81355550100", c.Phone, "the first attempt stands")

	// producer.WriteInline is what producers (`worker enqueue`) use: the
	// same answers.
	now := time.Now()
	require.NoError(t, producer.WriteInline(context.Background(), st, &first, now))
	err = producer.WriteInline(context.Background(), st, &other, now)
	require.True(t, errors.As(err, &conflict))
}
