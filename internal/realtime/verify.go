package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Verify checks the key and the model for `worker verify openai` by
// retrieving the model (GET {base}/models/{model},
// https://platform.openai.com/docs/api-reference/models/retrieve).
// A 401 wraps ErrUnauthorized, a 404 ErrModelNotFound.
func Verify(ctx context.Context, baseURL, apiKey, model string) error {
	if apiKey == "" {
		return errors.New("openai: OPENAI_API_KEY is empty")
	}
	if model == "" {
		return errors.New("openai: OPENAI_REALTIME_MODEL is empty")
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("openai: OPENAI_BASE_URL %q must be an http(s) URL like %s", baseURL, DefaultBaseURL)
	}
	endpoint := strings.TrimRight(baseURL, "/") + "/models/" + url.PathEscape(model)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return fmt.Errorf("openai: build request for %s: %w", endpoint, err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)

	// A private transport so no keep-alive goroutine outlives the check.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("openai: GET %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return statusError("GET "+endpoint, baseURL, apiKey, model, resp.StatusCode, body)
	}
	var m struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("openai: GET %s: answer is not a model object: %w", endpoint, err)
	}
	if m.ID != model {
		return fmt.Errorf("openai: GET %s: answered for model %q, not %q", endpoint, m.ID, model)
	}
	return nil
}

// statusError explains an HTTP failure from the API, naming the setting to
// fix. The API's own message is included with the key redacted.
func statusError(op, baseURL, apiKey, model string, status int, body []byte) error {
	msg := apiMessage(body, apiKey)
	if msg != "" {
		msg = ": " + msg
	}
	switch {
	case status == http.StatusUnauthorized:
		return fmt.Errorf("openai: %s: OPENAI_API_KEY was rejected (HTTP 401)%s: %w", op, msg, ErrUnauthorized)
	case status == http.StatusNotFound:
		return fmt.Errorf("openai: %s: model %q (OPENAI_REALTIME_MODEL) is unknown or not available to this key, or OPENAI_BASE_URL %q is wrong (HTTP 404)%s: %w",
			op, model, baseURL, msg, ErrModelNotFound)
	case status == http.StatusTooManyRequests:
		return fmt.Errorf("openai: %s: HTTP 429%s: %w", op, msg, ErrRateLimited)
	case status >= 500:
		return fmt.Errorf("openai: %s: HTTP %d%s: %w", op, status, msg, ErrServer)
	case status == http.StatusForbidden:
		return fmt.Errorf("openai: %s: the key (OPENAI_API_KEY) may not use this model or region (HTTP 403)%s: %w", op, msg, ErrUnauthorized)
	}
	return fmt.Errorf("openai: %s: unexpected HTTP %d%s", op, status, msg)
}

// apiMessage pulls error.message out of an OpenAI error body.
func apiMessage(body []byte, apiKey string) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
		return ""
	}
	return redact(e.Error.Message, apiKey)
}
