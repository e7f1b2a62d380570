package chatsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/analysis/chatsim"
	openai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/require"
)

// serve starts a server for script and returns it with its base URL.
func serve(t *testing.T, script chatsim.Script, opts ...chatsim.Option) (*chatsim.Server, string) {
	t.Helper()
	s := chatsim.New(script, opts...)
	base, err := s.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, base
}

// client is go-openai's real client for base with key.
func client(base, key string) *openai.Client {
	cfg := openai.DefaultConfig(key)
	cfg.BaseURL = base
	return openai.NewClientWithConfig(cfg)
}

// start serves script and returns the server and a go-openai client for it.
func start(t *testing.T, script chatsim.Script, opts ...chatsim.Option) (*chatsim.Server, *openai.Client) {
	t.Helper()
	s, base := serve(t, script, opts...)
	return s, client(base, chatsim.DefaultAPIKey)
}

// strictSchema is a valid strict schema with a nullable enum.
var strictSchema = json.RawMessage(`{"type":"object","properties":{
	"summary":{"type":"string"},
	"ok":{"type":"boolean"},
	"size":{"type":["string","null"],"enum":["small","large",null]},
	"inner":{"type":"object","properties":{"n":{"type":"number"}},"required":["n"],"additionalProperties":false}
},"required":["summary","ok","size","inner"],"additionalProperties":false}`)

func request(schema json.RawMessage) openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{{Role: "system", Content: "sys"}, {Role: "user", Content: "hello"}},
		ResponseFormat: &openai.ChatCompletionResponseFormat{
			Type:       openai.ChatCompletionResponseFormatTypeJSONSchema,
			JSONSchema: &openai.ChatCompletionResponseFormatJSONSchema{Name: "answer", Schema: schema, Strict: true},
		},
	}
}

func apiStatus(t *testing.T, err error) int {
	t.Helper()
	var apiErr *openai.APIError
	require.ErrorAs(t, err, &apiErr)
	return apiErr.HTTPStatusCode
}

func TestScriptedRepliesInOrderThenAuto(t *testing.T) {
	s, c := start(t, chatsim.Script{Replies: []chatsim.Reply{
		{Content: `{"summary":"first"}`},
		{Refusal: "I can't help with that."},
		{Content: `{"summary":"cut`, FinishReason: "length"},
	}})
	ctx := t.Context()

	resp, err := c.CreateChatCompletion(ctx, request(strictSchema))
	require.NoError(t, err)
	require.Equal(t, `{"summary":"first"}`, resp.Choices[0].Message.Content)
	require.Equal(t, openai.FinishReasonStop, resp.Choices[0].FinishReason)
	require.Positive(t, resp.Usage.PromptTokens)

	resp, err = c.CreateChatCompletion(ctx, request(strictSchema))
	require.NoError(t, err)
	require.Equal(t, "I can't help with that.", resp.Choices[0].Message.Refusal)
	require.Empty(t, resp.Choices[0].Message.Content)

	resp, err = c.CreateChatCompletion(ctx, request(strictSchema))
	require.NoError(t, err)
	require.Equal(t, openai.FinishReasonLength, resp.Choices[0].FinishReason)

	// The script ran out: Auto answers with a document satisfying the schema.
	resp, err = c.CreateChatCompletion(ctx, request(strictSchema))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(resp.Choices[0].Message.Content), &got))
	require.Equal(t, map[string]any{"summary": "simulated summary", "ok": true, "size": "small", "inner": map[string]any{"n": 1.0}}, got)

	reqs := s.Requests()
	require.Len(t, reqs, 4)
	require.Equal(t, "gpt-4o-mini", reqs[0].Model)
	require.Equal(t, []chatsim.Message{{Role: "system", Content: "sys"}, {Role: "user", Content: "hello"}}, reqs[0].Messages)
	require.Equal(t, "answer", reqs[0].ResponseFormat.JSONSchema.Name)
	require.True(t, reqs[0].ResponseFormat.JSONSchema.Strict)
	require.JSONEq(t, string(strictSchema), string(reqs[0].ResponseFormat.JSONSchema.Schema))
	require.True(t, reqs[0].Authorized)
}

func TestErrorsLookLikeOpenAIs(t *testing.T) {
	s, c := start(t, chatsim.Script{Replies: []chatsim.Reply{
		chatsim.RateLimited(7), chatsim.ServerError(), chatsim.Malformed(),
	}})
	ctx := t.Context()

	_, err := c.CreateChatCompletion(ctx, request(strictSchema))
	require.Equal(t, http.StatusTooManyRequests, apiStatus(t, err))
	var apiErr *openai.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "rate_limit_exceeded", apiErr.Code)

	_, err = c.CreateChatCompletion(ctx, request(strictSchema))
	require.Equal(t, http.StatusInternalServerError, apiStatus(t, err))

	_, err = c.CreateChatCompletion(ctx, request(strictSchema))
	require.Error(t, err, "a body that is not JSON")
	require.False(t, errors.As(err, &apiErr))

	got := s.Requests()
	require.Equal(t, []int{429, 500, 200}, []int{got[0].Status, got[1].Status, got[2].Status})
}

func TestRateLimitSendsRetryAfter(t *testing.T) {
	_, base := serve(t, chatsim.Script{Replies: []chatsim.Reply{chatsim.RateLimited(7)}})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/chat/completions",
		jsonBody(t, map[string]any{"model": "gpt-4o-mini", "messages": []any{map[string]any{"role": "user", "content": "hi"}}}))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+chatsim.DefaultAPIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "7", resp.Header.Get("Retry-After"))
	require.Equal(t, "7000", resp.Header.Get("retry-after-ms"))
}

func TestRequestsAreValidatedLikeTheAPI(t *testing.T) {
	s, base := serve(t, chatsim.Script{})
	c := client(base, chatsim.DefaultAPIKey)
	ctx := t.Context()

	_, err := client(base, "sk-wrong").CreateChatCompletion(ctx, request(strictSchema))
	require.Equal(t, http.StatusUnauthorized, apiStatus(t, err))
	require.NotContains(t, err.Error(), "sk-wrong", "the key is never echoed")

	r := request(strictSchema)
	r.Model = "gpt-nonexistent"
	_, err = c.CreateChatCompletion(ctx, r)
	require.Equal(t, http.StatusNotFound, apiStatus(t, err))

	for name, schema := range map[string]string{
		"optional property":       `{"type":"object","properties":{"a":{"type":"string"}},"required":[],"additionalProperties":false}`,
		"additional properties":   `{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`,
		"nested additional":       `{"type":"object","properties":{"o":{"type":"object","properties":{},"required":[]}},"required":["o"],"additionalProperties":false}`,
		"enum of the wrong type":  `{"type":"object","properties":{"a":{"type":"string","enum":["x",1]}},"required":["a"],"additionalProperties":false}`,
		"null enum not nullable":  `{"type":"object","properties":{"a":{"type":"string","enum":["x",null]}},"required":["a"],"additionalProperties":false}`,
		"unsupported keyword":     `{"type":"object","properties":{"a":{"type":"string","maxLength":5}},"required":["a"],"additionalProperties":false}`,
		"root not an object":      `{"type":"string"}`,
		"unknown type":            `{"type":"object","properties":{"a":{"type":"text"}},"required":["a"],"additionalProperties":false}`,
		"required names a ghost":  `{"type":"object","properties":{},"required":["a"],"additionalProperties":false}`,
		"array without its items": `{"type":"object","properties":{"a":{"type":"array"}},"required":["a"],"additionalProperties":false}`,
	} {
		_, err := c.CreateChatCompletion(ctx, request(json.RawMessage(schema)))
		require.Equal(t, http.StatusBadRequest, apiStatus(t, err), name)
		require.Contains(t, err.Error(), "Invalid schema for response_format 'answer'", name)
		require.Error(t, chatsim.ValidateStrictSchema(json.RawMessage(schema)), name)
	}
	require.NoError(t, chatsim.ValidateStrictSchema(strictSchema))

	r = request(strictSchema)
	r.ResponseFormat.JSONSchema.Name = "has spaces"
	_, err = c.CreateChatCompletion(ctx, r)
	require.Equal(t, http.StatusBadRequest, apiStatus(t, err))

	for _, q := range s.Requests() {
		require.NotEqual(t, http.StatusOK, q.Status, "no invalid request took a scripted reply")
	}
}

func TestModelsEndpoint(t *testing.T) {
	_, c := start(t, chatsim.Script{}, chatsim.WithModels("gpt-4o-mini", "gpt-5-mini"))
	m, err := c.GetModel(t.Context(), "gpt-5-mini")
	require.NoError(t, err)
	require.Equal(t, "gpt-5-mini", m.ID)
	_, err = c.GetModel(t.Context(), "gpt-nonexistent")
	require.Equal(t, http.StatusNotFound, apiStatus(t, err))
}

func TestDelayedReplyGivesWayToTheClientsDeadline(t *testing.T) {
	s, c := start(t, chatsim.Script{Replies: []chatsim.Reply{{Content: "{}", DelayMS: 60_000}}})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := c.CreateChatCompletion(ctx, request(strictSchema))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// The handler notices the client left, and records it.
	wctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := s.WaitFor(wctx, func(r []chatsim.Request) bool { return len(r) == 1 })
	require.NoError(t, err)
	require.Equal(t, 499, got[0].Status)
}

func jsonBody(t *testing.T, v any) *bytes.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return bytes.NewReader(b)
}

func TestScriptAndAddressAreChecked(t *testing.T) {
	_, err := chatsim.New(chatsim.Script{}).Start("0.0.0.0:0")
	require.ErrorContains(t, err, "not loopback")
	_, err = chatsim.New(chatsim.Script{Replies: []chatsim.Reply{{Content: "x", Status: 500}}}).Start("127.0.0.1:0")
	require.ErrorContains(t, err, "Replies[0]")
	_, err = chatsim.New(chatsim.Script{Replies: []chatsim.Reply{{Status: 302}}}).Start("127.0.0.1:0")
	require.ErrorContains(t, err, "not an error status")

	var sc chatsim.Script
	require.NoError(t, json.Unmarshal([]byte(`{"replies":[{"status":429,"retry_after_seconds":2},{"content":"{}"}],"then":{"auto":true}}`), &sc))
	require.NoError(t, sc.Validate())
	require.Equal(t, chatsim.RateLimited(2), sc.Replies[0])
}
