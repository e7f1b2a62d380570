package scaler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Formation is a process type's formation as the Platform API returns it
// (the fields the scaler reads).
type Formation struct {
	Type     string `json:"type"`
	Quantity int    `json:"quantity"`
	Size     string `json:"size"`
}

// Formations reads and sets one process type's formation.
type Formations interface {
	Formation(ctx context.Context) (Formation, error)
	Scale(ctx context.Context, quantity int) (Formation, error)
}

// APIError is an error answer of the Platform API: its status and its
// body's id and message (rate_limit, unauthorized, not_found, ...).
type APIError struct {
	Status  int
	ID      string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("heroku platform api: HTTP %d %s: %s", e.Status, e.ID, e.Message)
}

// Heroku is the Platform API's formation endpoints for one app and
// process type: GET and PATCH /apps/{app}/formation/{type}, with a bearer
// token (HEROKU_API_KEY), version 3.
type Heroku struct {
	base, app, typ, token string
	http                  *http.Client
}

// NewHeroku builds the client; baseURL is https://api.heroku.com (or a
// local stand-in outside production).
func NewHeroku(baseURL, token, app, processType string) (*Heroku, error) {
	if token == "" || app == "" || processType == "" {
		return nil, errors.New("scaler: the Heroku client needs a token, an app and a process type")
	}
	if _, err := url.Parse(baseURL); err != nil {
		return nil, fmt.Errorf("scaler: Heroku API URL: %w", err)
	}
	return &Heroku{base: baseURL, app: app, typ: processType, token: token, http: &http.Client{Timeout: 15 * time.Second}}, nil
}

// Formation implements Formations.
func (h *Heroku) Formation(ctx context.Context) (Formation, error) {
	return h.do(ctx, http.MethodGet, nil)
}

// Scale implements Formations: it sets the quantity, keeping the size.
func (h *Heroku) Scale(ctx context.Context, quantity int) (Formation, error) {
	return h.do(ctx, http.MethodPatch, map[string]int{"quantity": quantity})
}

func (h *Heroku) do(ctx context.Context, method string, body any) (Formation, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Formation{}, err
		}
		rd = bytes.NewReader(b)
	}
	u := fmt.Sprintf("%s/apps/%s/formation/%s", h.base, url.PathEscape(h.app), url.PathEscape(h.typ))
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return Formation{}, fmt.Errorf("heroku platform api: %w", err)
	}
	req.Header.Set("Accept", "application/vnd.heroku+json; version=3")
	req.Header.Set("Authorization", "Bearer "+h.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return Formation{}, fmt.Errorf("heroku platform api: %s formation: %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Formation{}, fmt.Errorf("heroku platform api: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode}
		var b struct{ ID, Message string }
		if json.Unmarshal(raw, &b) == nil {
			e.ID, e.Message = b.ID, b.Message
		}
		return Formation{}, e
	}
	var f Formation
	if err := json.Unmarshal(raw, &f); err != nil {
		return Formation{}, fmt.Errorf("heroku platform api: formation answer: %w", err)
	}
	return f, nil
}
