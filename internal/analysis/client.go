package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// ClientConfig configures the chat-completions client.
type ClientConfig struct {
	APIKey string
	// BaseURL is OPENAI_BASE_URL, e.g. https://api.openai.com/v1.
	BaseURL string
	// HTTPClient defaults to one without a timeout of its own: every request
	// runs under the caller's context deadline.
	HTTPClient *http.Client
}

// Client calls chat completions through go-openai, and turns a rate limit
// into a RateLimitError carrying the server's Retry-After, which go-openai's
// errors do not expose.
type Client struct {
	api *openai.Client
}

// NewClient makes a Client. The key is only ever sent as the bearer token.
func NewClient(c ClientConfig) (*Client, error) {
	if c.APIKey == "" {
		return nil, errors.New("analysis: ClientConfig.APIKey (OPENAI_API_KEY) is empty")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("analysis: ClientConfig.BaseURL (OPENAI_BASE_URL) must be an http(s) URL like https://api.openai.com/v1")
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	wrapped := *hc
	wrapped.Transport = headerTransport{next: next}
	cfg := openai.DefaultConfig(c.APIKey)
	cfg.BaseURL = strings.TrimRight(c.BaseURL, "/")
	cfg.HTTPClient = &wrapped
	return &Client{api: openai.NewClientWithConfig(cfg)}, nil
}

// CreateChatCompletion sends one request. A 429 comes back as a
// *RateLimitError; other failures wrap go-openai's error.
func (c *Client) CreateChatCompletion(ctx context.Context, req openai.ChatCompletionRequest) (openai.ChatCompletionResponse, error) {
	h := &responseHeaders{}
	resp, err := c.api.CreateChatCompletion(context.WithValue(ctx, headersKey{}, h), req)
	if err == nil {
		return resp, nil
	}
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	status := 0
	switch {
	case errors.As(err, &apiErr):
		status = apiErr.HTTPStatusCode
	case errors.As(err, &reqErr):
		status = reqErr.HTTPStatusCode
	}
	if status == http.StatusTooManyRequests {
		return resp, &RateLimitError{after: retryAfter(h.get(), time.Now()), err: err}
	}
	return resp, fmt.Errorf("chat completion: %w", err)
}

// CheckModel asks whether the model exists and the key may use it (GET
// /models/{id}), for `worker verify`.
func (c *Client) CheckModel(ctx context.Context, model string) error {
	if _, err := c.api.GetModel(ctx, model); err != nil {
		return fmt.Errorf("analysis: model %q: %w", model, err)
	}
	return nil
}

// RateLimitError is a 429 from the API. RetryAfter is the server's
// Retry-After (0 when it sent none); the worker's retry policy waits that
// long before the next try.
type RateLimitError struct {
	after time.Duration
	err   error
}

func (e *RateLimitError) Error() string {
	if e.after > 0 {
		return fmt.Sprintf("chat completion rate limited, retry after %s: %v", e.after, e.err)
	}
	return fmt.Sprintf("chat completion rate limited: %v", e.err)
}

func (e *RateLimitError) Unwrap() error { return e.err }

// RetryAfter implements the worker's retry-delay hint.
func (e *RateLimitError) RetryAfter() time.Duration { return e.after }

// maxRetryAfter bounds a server's Retry-After: a broken header must not
// park the task for days.
const maxRetryAfter = 15 * time.Minute

// retryAfter reads retry-after-ms (OpenAI's, more precise) or Retry-After
// (seconds or an HTTP date).
func retryAfter(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if ms, err := strconv.ParseFloat(strings.TrimSpace(h.Get("retry-after-ms")), 64); err == nil && ms > 0 {
		d = time.Duration(ms * float64(time.Millisecond))
	} else if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			d = time.Duration(s * float64(time.Second))
		} else if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(now)
		}
	}
	if d <= 0 {
		return 0
	}
	// Whole seconds, at least one: asynq schedules retries by the second.
	d = ((d + time.Second - 1) / time.Second) * time.Second
	return min(d, maxRetryAfter)
}

// headersKey carries a *responseHeaders from CreateChatCompletion to the
// transport, which is the only place that sees the response headers of a
// failed request.
type headersKey struct{}

type responseHeaders struct {
	mu sync.Mutex
	h  http.Header
}

func (r *responseHeaders) set(h http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.h = h.Clone()
}

func (r *responseHeaders) get() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == nil {
		return http.Header{}
	}
	return r.h
}

type headerTransport struct{ next http.RoundTripper }

func (t headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if h, ok := req.Context().Value(headersKey{}).(*responseHeaders); ok && resp != nil {
		h.set(resp.Header)
	}
	return resp, err
}
