package scaler_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// platformAPI is a local stand-in for the Heroku Platform API's formation
// endpoints (GET and PATCH /apps/{app}/formation/{type}), strict about
// what the real one requires: the version 3 Accept header, a bearer token,
// a JSON body with the quantity. onScale, when set, applies a change (the
// dyno manager's part) before the answer.
type platformAPI struct {
	t     *testing.T
	srv   *httptest.Server
	app   string
	token string

	mu       sync.Mutex
	quantity int
	gets     int
	patches  []int
	onScale  func(from, to int)
}

func newPlatformAPI(t *testing.T, app, token string, quantity int) *platformAPI {
	p := &platformAPI{t: t, app: app, token: token, quantity: quantity}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *platformAPI) fail(w http.ResponseWriter, status int, id, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "message": msg})
}

func (p *platformAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Accept") != "application/vnd.heroku+json; version=3" {
		p.fail(w, http.StatusBadRequest, "bad_request", "Accept must ask for version 3")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+p.token {
		p.fail(w, http.StatusUnauthorized, "unauthorized", "Invalid credentials provided.")
		return
	}
	typ, ok := strings.CutPrefix(r.URL.Path, "/apps/"+p.app+"/formation/")
	if !ok || typ != "worker" {
		p.fail(w, http.StatusNotFound, "not_found", "Couldn't find that formation.")
		return
	}
	p.mu.Lock()
	from := p.quantity
	switch r.Method {
	case http.MethodGet:
		p.gets++
	case http.MethodPatch:
		var body struct {
			Quantity *int `json:"quantity"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Quantity == nil || *body.Quantity < 0 || r.Header.Get("Content-Type") != "application/json" {
			p.mu.Unlock()
			p.fail(w, http.StatusUnprocessableEntity, "invalid_params", "quantity is required")
			return
		}
		p.quantity = *body.Quantity
		p.patches = append(p.patches, p.quantity)
	default:
		p.mu.Unlock()
		p.fail(w, http.StatusMethodNotAllowed, "not_allowed", r.Method)
		return
	}
	to, onScale := p.quantity, p.onScale
	p.mu.Unlock()
	if r.Method == http.MethodPatch && onScale != nil {
		onScale(from, to)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"app": map[string]string{"name": p.app}, "command": "bin/worker run", "id": "01234567-89ab-cdef-0123-456789abcdef",
		"quantity": to, "size": "Standard-1X", "type": "worker",
	})
}

// looks is how many times the formation has been read.
func (p *platformAPI) looks() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets
}

func (p *platformAPI) scaled() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.patches...)
}
