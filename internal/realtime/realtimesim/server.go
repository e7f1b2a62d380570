package realtimesim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/simserver"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// DefaultAPIKey is the key a Server accepts unless WithAPIKey says otherwise.
const DefaultAPIKey = "sk-realtimesim-local"

// Server is a local stand-in for the OpenAI Realtime API: GET
// /v1/models/{id} and the WebSocket /v1/realtime, on loopback only.
//
// Each accepted WebSocket runs in its handler goroutine (the connection's
// engine, which alone writes data frames and owns the connection's state)
// plus one reader goroutine. Close stops both for every connection and waits.
type Server struct {
	// Immutable after Start.
	script    Script
	apiKey    string
	models    map[string]bool
	log       *zap.Logger
	turnAudio [][]int16

	rec  *recorder
	srv  *simserver.Server
	quit <-chan struct{} // srv's: closed when Close begins

	mu       sync.Mutex
	nextConn int
}

// Option configures a Server.
type Option func(*Server)

// WithAPIKey sets the one key the server accepts.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithModels sets the models the server knows (default gpt-realtime).
func WithModels(models ...string) Option {
	return func(s *Server) {
		s.models = map[string]bool{}
		for _, m := range models {
			s.models[m] = true
		}
	}
}

// WithLogger logs what the simulator does.
func WithLogger(l *zap.Logger) Option { return func(s *Server) { s.log = l } }

// New makes a server for a script. Start serves it.
func New(script Script, opts ...Option) *Server {
	s := &Server{
		script: script.withDefaults(),
		apiKey: DefaultAPIKey,
		models: map[string]bool{"gpt-realtime": true},
		log:    zap.NewNop(),
		rec:    newRecorder(),
		srv:    simserver.New("realtimesim"),
	}
	s.quit = s.srv.Quit()
	for _, o := range opts {
		o(s)
	}
	return s
}

// Start listens on addr (loopback only, e.g. "127.0.0.1:0") and returns the
// base URL to use as OPENAI_BASE_URL, like http://127.0.0.1:PORT/v1.
func (s *Server) Start(addr string) (string, error) {
	if err := s.script.Validate(); err != nil {
		return "", err
	}
	if err := simserver.CheckLoopback("realtimesim", addr); err != nil {
		return "", err
	}
	if err := s.renderTurns(); err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models/{model}", s.handleModel)
	mux.HandleFunc("GET /v1/realtime", s.handleRealtime)
	hostport, err := s.srv.Start(addr, mux)
	if err != nil {
		return "", err
	}
	return "http://" + hostport + "/v1", nil
}

// Close stops serving, ends every connection and waits for their goroutines.
func (s *Server) Close() error { return s.srv.Close() }

// Log returns a copy of what the server has recorded so far.
func (s *Server) Log() Log {
	l, _ := s.rec.snapshot()
	return l
}

// WaitFor blocks until cond holds for the log, or ctx ends. It wakes on each
// change, so tests need no sleeps.
func (s *Server) WaitFor(ctx context.Context, cond func(Log) bool) (Log, error) {
	return s.rec.waitFor(ctx, cond)
}

// renderTurns synthesises every agent turn once, so a broken voice fails
// Start rather than a call.
func (s *Server) renderTurns() error {
	if s.script.Voice == "espeak" {
		if _, err := exec.LookPath("espeak-ng"); err != nil {
			return fmt.Errorf("realtimesim: Script.Voice is espeak but espeak-ng is not installed (apt-get install espeak-ng): %w", err)
		}
	}
	s.turnAudio = make([][]int16, len(s.script.Agent))
	for i, t := range s.script.Agent {
		switch {
		case t.Text == "" && t.AudioMS == 0:
		case s.script.Voice == "espeak" && t.Text != "":
			pcm, err := Espeak(context.Background(), t.Text)
			if err != nil {
				return fmt.Errorf("realtimesim: Script.Agent[%d]: %w", i, err)
			}
			s.turnAudio[i] = pcm
		default:
			ms := t.AudioMS
			if ms == 0 {
				ms = textMS(t.Text)
			}
			s.turnAudio[i] = Voice(ms, t.Text)
		}
	}
	return nil
}

func (s *Server) authorized(r *http.Request) bool {
	want := "Bearer " + s.apiKey
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

// writeAPIError answers like the OpenAI REST API does. It never echoes the
// key it was given.
func writeAPIError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": code}})
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request) bool {
	if !s.authorized(r) {
		writeAPIError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.")
		return true
	}
	return false
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	if s.refuse(w, r) {
		return
	}
	model := r.PathValue("model")
	if !s.models[model] {
		writeAPIError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("The model '%s' does not exist or you do not have access to it.", model))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": model, "object": "model", "created": 1756339200, "owned_by": "system"})
}

var upgrader = websocket.Upgrader{
	HandshakeTimeout: 5 * time.Second,
	CheckOrigin:      func(*http.Request) bool { return true },
}

func (s *Server) handleRealtime(w http.ResponseWriter, r *http.Request) {
	if s.refuse(w, r) {
		return
	}
	if r.Header.Get("OpenAI-Beta") != "" {
		writeAPIError(w, http.StatusBadRequest, "invalid_request_error", "beta_not_supported",
			"The simulator speaks the GA Realtime protocol only; do not send the OpenAI-Beta header.")
		return
	}
	model := r.URL.Query().Get("model")
	if !s.models[model] {
		writeAPIError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("The model '%s' does not exist or you do not have access to it.", model))
		return
	}
	release, err := s.srv.Hold() // Close does not wait for hijacked connections otherwise
	if err != nil {
		writeAPIError(w, http.StatusServiceUnavailable, "server_error", "", "The simulator is shutting down.")
		return
	}
	defer release()
	s.mu.Lock()
	s.nextConn++
	id := s.nextConn
	s.mu.Unlock()

	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.rec.update(func(l *Log) { l.Connections++ })
	newConn(s, id, ws, model).serve()
}
