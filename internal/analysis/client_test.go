package analysis

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	openai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/require"
)

// startSim serves script and returns it with a Client for it.
func startSim(t testing.TB, script chatsim.Script, opts ...chatsim.Option) (*chatsim.Server, *Client) {
	t.Helper()
	sim := chatsim.New(script, opts...)
	base, err := sim.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sim.Close()) })
	c, err := NewClient(ClientConfig{APIKey: chatsim.DefaultAPIKey, BaseURL: base + "/"})
	require.NoError(t, err)
	return sim, c
}

func chatRequest() openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
}

func TestRateLimitCarriesRetryAfter(t *testing.T) {
	t.Parallel()
	_, c := startSim(t, chatsim.Script{Replies: []chatsim.Reply{chatsim.RateLimited(7), chatsim.RateLimited(0), chatsim.ServerError()}})

	_, err := c.CreateChatCompletion(t.Context(), chatRequest())
	var rl *RateLimitError
	require.ErrorAs(t, err, &rl)
	require.Equal(t, 7*time.Second, rl.RetryAfter())
	var apiErr *openai.APIError
	require.ErrorAs(t, err, &apiErr, "go-openai's error stays reachable")
	task := asynq.NewTask(tasks.TypeCallAnalyze, nil)
	require.Equal(t, 7*time.Second, worker.RetryDelay(3, err, task), "the worker waits what the server asked")

	_, err = c.CreateChatCompletion(t.Context(), chatRequest())
	require.ErrorAs(t, err, &rl, "a 429 without Retry-After")
	require.Zero(t, rl.RetryAfter())

	_, err = c.CreateChatCompletion(t.Context(), chatRequest())
	require.False(t, errors.As(err, &rl), "a 500 is not a rate limit")
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusInternalServerError, apiErr.HTTPStatusCode)
}

func TestRetryAfterHeaderForms(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	for name, tc := range map[string]struct {
		h    http.Header
		want time.Duration
	}{
		"none":            {h(), 0},
		"seconds":         {h("Retry-After", "20"), 20 * time.Second},
		"fraction":        {h("Retry-After", "1.2"), 2 * time.Second},
		"milliseconds":    {h("retry-after-ms", "1500", "Retry-After", "9"), 2 * time.Second},
		"http date":       {h("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), 90 * time.Second},
		"past date":       {h("Retry-After", now.Add(-time.Minute).Format(http.TimeFormat)), 0},
		"garbage":         {h("Retry-After", "soon"), 0},
		"negative":        {h("Retry-After", "-5"), 0},
		"capped":          {h("Retry-After", "86400"), maxRetryAfter},
		"bad ms, good s":  {h("retry-after-ms", "x", "Retry-After", "3"), 3 * time.Second},
		"zero ms, good s": {h("retry-after-ms", "0", "Retry-After", "4"), 4 * time.Second},
	} {
		require.Equal(t, tc.want, retryAfter(tc.h, now), name)
	}
}

func TestClientConfigAndModelCheck(t *testing.T) {
	t.Parallel()
	_, err := NewClient(ClientConfig{BaseURL: "https://api.openai.com/v1"})
	require.ErrorContains(t, err, "OPENAI_API_KEY")
	_, err = NewClient(ClientConfig{APIKey: "sk-x", BaseURL: "api.openai.com"})
	require.ErrorContains(t, err, "OPENAI_BASE_URL")

	sim, c := startSim(t, chatsim.Script{})
	require.NoError(t, c.CheckModel(t.Context(), "gpt-4o-mini"))
	err = c.CheckModel(t.Context(), "gpt-nope")
	require.ErrorContains(t, err, `model "gpt-nope"`)
	require.Equal(t, "/v1/models/gpt-4o-mini", sim.Requests()[0].Path)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.CreateChatCompletion(ctx, chatRequest())
	require.ErrorIs(t, err, context.Canceled)
}
