// Package herokusim is a local stand-in for the Heroku Platform API's
// formation endpoints, for tests and `make fleet`: GET and PATCH
// /apps/{app}/formation/{type}, as strict as the real API about what it
// requires (the version 3 Accept header, a bearer token, a JSON body with
// the quantity), answering errors with the API's {"id", "message"} body.
// Heroku cannot be reached from the development machines; the scaler's
// client is tested against this, and the dyno manager's part (starting
// and stopping processes when the formation changes) is the caller's
// OnScale.
//
// It is a test double, selected only by pointing HEROKU_API_URL at it,
// which production refuses (https only).
package herokusim

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
)

// Options configure a Server.
type Options struct {
	App, Token, ProcessType string
	Quantity                int // the formation at the start
	// OnScale applies a change of quantity, as Heroku's dyno manager does
	// (start dynos, or stop the highest-numbered ones), before the PATCH
	// is answered. nil: only the number changes.
	OnScale func(from, to int)
}

// Server is the stand-in, on a loopback port.
type Server struct {
	o   Options
	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex // guards the fields below
	quantity int
	gets     int
	patches  []int
}

// Start listens on 127.0.0.1 and serves until Close.
func Start(o Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, ln: ln, quantity: o.Quantity}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve)}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the API's base URL, for HEROKU_API_URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops serving.
func (s *Server) Close() { _ = s.srv.Close() }

// Quantity is the formation now.
func (s *Server) Quantity() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quantity
}

// Looks is how many times the formation was read.
func (s *Server) Looks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// Scaled lists every quantity PATCHed, in order.
func (s *Server) Scaled() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.patches...)
}

func fail(w http.ResponseWriter, status int, id, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "message": msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Accept") != "application/vnd.heroku+json; version=3" {
		fail(w, http.StatusBadRequest, "bad_request", "Accept must ask for version 3")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.o.Token {
		fail(w, http.StatusUnauthorized, "unauthorized", "Invalid credentials provided.")
		return
	}
	typ, ok := strings.CutPrefix(r.URL.Path, "/apps/"+s.o.App+"/formation/")
	if !ok || typ != s.o.ProcessType {
		fail(w, http.StatusNotFound, "not_found", "Couldn't find that formation.")
		return
	}
	s.mu.Lock()
	from := s.quantity
	switch r.Method {
	case http.MethodGet:
		s.gets++
	case http.MethodPatch:
		var body struct {
			Quantity *int `json:"quantity"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Quantity == nil || *body.Quantity < 0 ||
			r.Header.Get("Content-Type") != "application/json" {
			s.mu.Unlock()
			fail(w, http.StatusUnprocessableEntity, "invalid_params", "quantity is required")
			return
		}
		s.quantity = *body.Quantity
		s.patches = append(s.patches, s.quantity)
	default:
		s.mu.Unlock()
		fail(w, http.StatusMethodNotAllowed, "not_allowed", r.Method+" is not allowed here")
		return
	}
	to, onScale := s.quantity, s.o.OnScale
	s.mu.Unlock()
	if r.Method == http.MethodPatch && onScale != nil && to != from {
		onScale(from, to)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"app": map[string]string{"name": s.o.App}, "command": "bin/worker run", "id": "01234567-89ab-cdef-0123-456789abcdef",
		"quantity": to, "size": "Standard-1X", "type": s.o.ProcessType,
	})
}
