package chatsim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/docshield/voice-worker/internal/simserver"
)

// DefaultAPIKey is the key a Server accepts unless WithAPIKey says otherwise.
const DefaultAPIKey = "sk-chatsim-local"

// maxBody bounds a request body: a runaway client must not fill memory.
const maxBody = 4 << 20

// Server is a local stand-in for the chat-completions API.
//
// Requests are served on net/http's goroutines; everything they share (the
// remaining script, the request log) is guarded by mu. Close stops the
// listener, wakes delayed replies and waits for the serving goroutine.
type Server struct {
	// Immutable after New.
	apiKey string
	models map[string]bool

	srv  *simserver.Server
	quit <-chan struct{} // srv's: closed when Close begins

	mu       sync.Mutex
	replies  []Reply
	then     Reply
	requests []Request
	// changed is closed and replaced whenever a request is recorded.
	changed  chan struct{}
	answered int
	script   Script
}

// Option configures a Server.
type Option func(*Server)

// WithAPIKey sets the one key the server accepts.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithModels sets the models the server knows (default gpt-4o-mini).
func WithModels(models ...string) Option {
	return func(s *Server) {
		s.models = map[string]bool{}
		for _, m := range models {
			s.models[m] = true
		}
	}
}

// New makes a server for a script. Start serves it.
func New(script Script, opts ...Option) *Server {
	s := &Server{
		apiKey:  DefaultAPIKey,
		models:  map[string]bool{"gpt-4o-mini": true},
		srv:     simserver.New("chatsim"),
		changed: make(chan struct{}),
		script:  script,
		then:    Reply{Auto: true},
	}
	s.replies = append([]Reply(nil), script.Replies...)
	if script.Then != nil {
		s.then = *script.Then
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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models/{model}", s.handleModel)
	mux.HandleFunc("POST /v1/chat/completions", s.handleCompletion)
	hostport, err := s.srv.Start(addr, mux)
	if err != nil {
		return "", err
	}
	return "http://" + hostport + "/v1", nil
}

// Close stops serving, wakes delayed replies and waits.
func (s *Server) Close() error { return s.srv.Close() }

// Push appends replies to the script.
func (s *Server) Push(replies ...Reply) error {
	if err := (Script{Replies: replies}).Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies = append(s.replies, replies...)
	return nil
}

// Request is one request the server received.
type Request struct {
	Path string
	// Status is the HTTP status it was answered with.
	Status int
	// Authorized: it carried the right key. The key itself is not kept.
	Authorized bool

	Model               string
	Messages            []Message
	Temperature         *float64
	MaxCompletionTokens int
	ResponseFormat      *ResponseFormat
	// Body is the raw request body.
	Body []byte
}

// Message is one chat message as sent.
type Message struct {
	Role    string
	Content string
}

// ResponseFormat is the request's response_format.
type ResponseFormat struct {
	Type       string      `json:"type"`
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is a json_schema response format.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema"`
	Strict      bool            `json:"strict"`
}

// Requests returns a copy of what the server has received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// WaitFor blocks until cond holds for the requests received so far, or ctx
// ends. It wakes on each new request, so tests need no sleeps.
func (s *Server) WaitFor(ctx context.Context, cond func([]Request) bool) ([]Request, error) {
	for {
		s.mu.Lock()
		reqs := append([]Request(nil), s.requests...)
		changed := s.changed
		s.mu.Unlock()
		if cond(reqs) {
			return reqs, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return reqs, fmt.Errorf("chatsim: wait for requests: %w", ctx.Err())
		}
	}
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

// next takes the next scripted reply.
func (s *Server) next() Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.replies) == 0 {
		return s.then
	}
	r := s.replies[0]
	s.replies = s.replies[1:]
	return r
}

func (s *Server) authorized(r *http.Request) bool {
	want := "Bearer " + s.apiKey
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

// apiError answers like the OpenAI REST API does.
func apiError(w http.ResponseWriter, status int, typ, param string, code any, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var p any
	if param != "" {
		p = param
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": p, "code": code}})
}

func unauthorized(w http.ResponseWriter) {
	apiError(w, http.StatusUnauthorized, "invalid_request_error", "", "invalid_api_key",
		"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.")
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	req := Request{Path: r.URL.Path, Authorized: s.authorized(r)}
	defer func() { s.record(req) }()
	if !req.Authorized {
		req.Status = http.StatusUnauthorized
		unauthorized(w)
		return
	}
	model := r.PathValue("model")
	req.Model = model
	if !s.models[model] {
		req.Status = http.StatusNotFound
		apiError(w, http.StatusNotFound, "invalid_request_error", "model", "model_not_found",
			fmt.Sprintf("The model '%s' does not exist or you do not have access to it.", model))
		return
	}
	req.Status = http.StatusOK
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": model, "object": "model", "created": 1721172741, "owned_by": "system"})
}

// wireRequest is the part of a chat-completions body the simulator reads.
type wireRequest struct {
	Model               string          `json:"model"`
	Messages            []wireMessage   `json:"messages"`
	Temperature         *float64        `json:"temperature"`
	MaxCompletionTokens int             `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	ResponseFormat      *ResponseFormat `json:"response_format"`
}

type wireMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

func (s *Server) handleCompletion(w http.ResponseWriter, r *http.Request) {
	req := Request{Path: r.URL.Path, Authorized: s.authorized(r)}
	defer func() { s.record(req) }()
	if !req.Authorized {
		req.Status = http.StatusUnauthorized
		unauthorized(w)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	req.Body = body
	if err != nil {
		req.Status = http.StatusBadRequest
		apiError(w, req.Status, "invalid_request_error", "", nil, "Could not read the request body: "+err.Error())
		return
	}
	if status, param, msg := s.parse(body, &req); status != 0 {
		req.Status = status
		code := any(nil)
		if status == http.StatusNotFound {
			code = "model_not_found"
		}
		apiError(w, status, "invalid_request_error", param, code, msg)
		return
	}
	reply := s.next()
	if reply.DelayMS > 0 {
		t := time.NewTimer(time.Duration(reply.DelayMS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			req.Status = 499 // the client went away, as nginx logs it
			return
		case <-s.quit:
			req.Status = http.StatusServiceUnavailable
			apiError(w, req.Status, "server_error", "", nil, "The simulator is shutting down.")
			return
		}
	}
	req.Status = s.answer(w, &req, reply)
}

// parse validates the body like the API and fills req; a non-zero status
// is the error to answer with.
func (s *Server) parse(body []byte, req *Request) (status int, param, msg string) {
	var wr wireRequest
	if err := json.Unmarshal(body, &wr); err != nil {
		return http.StatusBadRequest, "", "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)"
	}
	req.Model, req.Temperature, req.MaxCompletionTokens, req.ResponseFormat =
		wr.Model, wr.Temperature, wr.MaxCompletionTokens, wr.ResponseFormat
	for i, m := range wr.Messages {
		content, ok := messageText(m.Content)
		if !ok {
			return http.StatusBadRequest, fmt.Sprintf("messages[%d].content", i), "Invalid type for 'messages[" + strconv.Itoa(i) + "].content'."
		}
		req.Messages = append(req.Messages, Message{Role: m.Role, Content: content})
	}
	switch {
	case wr.Model == "":
		return http.StatusBadRequest, "model", "you must provide a model parameter"
	case !s.models[wr.Model]:
		return http.StatusNotFound, "model", fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", wr.Model)
	case len(wr.Messages) == 0:
		return http.StatusBadRequest, "messages", "[] is too short - 'messages'"
	case wr.Stream:
		return http.StatusBadRequest, "stream", "The simulator does not stream."
	case wr.Temperature != nil && (*wr.Temperature < 0 || *wr.Temperature > 2):
		return http.StatusBadRequest, "temperature", fmt.Sprintf("%v is not in [0, 2] - 'temperature'", *wr.Temperature)
	}
	for i, m := range wr.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return http.StatusBadRequest, fmt.Sprintf("messages[%d].role", i), fmt.Sprintf("'%s' is not one of ['system', 'assistant', 'user', 'tool', 'developer'] - 'messages.%d.role'", m.Role, i)
		}
	}
	if rf := wr.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text", "json_object":
		case "json_schema":
			js := rf.JSONSchema
			if js == nil {
				return http.StatusBadRequest, "response_format.json_schema", "Missing required parameter: 'response_format.json_schema'."
			}
			if !schemaNameRe.MatchString(js.Name) {
				return http.StatusBadRequest, "response_format.json_schema.name", "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
			}
			if js.Strict {
				if err := ValidateStrictSchema(js.Schema); err != nil {
					return http.StatusBadRequest, "response_format", fmt.Sprintf("Invalid schema for response_format '%s': %v", js.Name, err)
				}
			}
		default:
			return http.StatusBadRequest, "response_format.type", fmt.Sprintf("Invalid value: '%s'. Supported values are: 'json_object', 'json_schema', and 'text'.", rf.Type)
		}
	}
	return 0, "", ""
}

// messageText reads a message's content: a string, or text parts.
func messageText(raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", false
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), true
}

func (s *Server) answer(w http.ResponseWriter, req *Request, reply Reply) int {
	if reply.Status != 0 {
		if reply.RetryAfterSeconds > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(reply.RetryAfterSeconds))
			w.Header().Set("retry-after-ms", strconv.Itoa(reply.RetryAfterSeconds*1000))
		}
		switch {
		case reply.Status == http.StatusTooManyRequests:
			w.Header().Set("x-ratelimit-remaining-requests", "0")
			apiError(w, reply.Status, "requests", "", "rate_limit_exceeded", fmt.Sprintf(
				"Rate limit reached for %s on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in %ds.", req.Model, reply.RetryAfterSeconds))
		case reply.Status >= 500:
			apiError(w, reply.Status, "server_error", "", nil, "The server had an error while processing your request. Sorry about that!")
		default:
			apiError(w, reply.Status, "invalid_request_error", "", nil, "Scripted error.")
		}
		return reply.Status
	}
	if reply.Malformed {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"id": "chatcmpl-sim", "object": "chat.completion", "choices": [{"index": 0, "mess`)
		return http.StatusOK
	}
	content := reply.Content
	if reply.Auto {
		var err error
		if content, err = autoContent(req.ResponseFormat); err != nil {
			apiError(w, http.StatusInternalServerError, "server_error", "", nil, "chatsim: "+err.Error())
			return http.StatusInternalServerError
		}
	}
	finish := reply.FinishReason
	if finish == "" {
		finish = "stop"
	}
	msg := map[string]any{"role": "assistant", "content": content, "refusal": nil}
	if reply.Refusal != "" {
		msg["content"], msg["refusal"] = nil, reply.Refusal
	}
	s.mu.Lock()
	s.answered++
	id := s.answered
	s.mu.Unlock()
	prompt := 0
	for _, m := range req.Messages {
		prompt += utf8.RuneCountInString(m.Content)/4 + 4
	}
	completion := utf8.RuneCountInString(content)/4 + 1
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": fmt.Sprintf("chatcmpl-sim%06d", id), "object": "chat.completion", "created": time.Now().Unix(),
		"model": req.Model, "system_fingerprint": "fp_chatsim",
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
		"usage":   map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
	})
	return http.StatusOK
}

func autoContent(rf *ResponseFormat) (string, error) {
	if rf == nil || rf.JSONSchema == nil {
		return "Simulated answer.", nil
	}
	b, err := Generate(rf.JSONSchema.Schema)
	return string(b), err
}
