package realtime

import (
	"errors"
	"fmt"
	"strings"
)

// Error classes. API errors, close errors and Verify errors wrap one of these
// so a caller can decide with errors.Is whether to end the call politely, retry
// later, or fail with a recorded reason.
var (
	// ErrRateLimited: the account is over a rate or token limit. Retry later.
	ErrRateLimited = errors.New("realtime: rate limited")
	// ErrServer: OpenAI had an internal error. The session may continue.
	ErrServer = errors.New("realtime: server error")
	// ErrSessionExpired: the session hit its maximum duration (60 minutes
	// at the time of writing); the server closes the socket next.
	ErrSessionExpired = errors.New("realtime: session expired")
	// ErrInvalidRequest: the server refused a client event. Usually a bug in
	// what we sent (or a benign race such as cancelling a finished response).
	ErrInvalidRequest = errors.New("realtime: invalid request")
	// ErrClosed: the WebSocket is gone. The concrete error is a *CloseError
	// carrying the close code and reason.
	ErrClosed = errors.New("realtime: session closed")
	// ErrUnauthorized: the API key was rejected (HTTP 401).
	ErrUnauthorized = errors.New("realtime: API key rejected")
	// ErrModelNotFound: the model does not exist or the key cannot use it.
	ErrModelNotFound = errors.New("realtime: model not found")
	// ErrMalformedEvent: the server sent something that is not a valid event.
	// It is reported as an ErrorEvent and the session goes on.
	ErrMalformedEvent = errors.New("realtime: malformed server event")
)

// APIError is the "error" object of an error server event, or of a failed
// response's status_details. Fields follow
// https://developers.openai.com/api/reference/resources/realtime/server-events
// (error: type, code, message, param, event_id).
type APIError struct {
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	// EventID is the id of our client event that caused the error, if any.
	EventID string `json:"event_id,omitempty"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("realtime: api error")
	if e.Type != "" {
		b.WriteString(" type=" + e.Type)
	}
	if e.Code != "" {
		b.WriteString(" code=" + e.Code)
	}
	if e.Param != "" {
		b.WriteString(" param=" + e.Param)
	}
	if e.EventID != "" {
		b.WriteString(" event=" + e.EventID)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Unwrap returns the error class, so errors.Is(err, ErrRateLimited) works.
func (e *APIError) Unwrap() error { return classify(e.Type, e.Code, e.Message) }

// Fatal reports whether the session cannot continue after this error.
func (e *APIError) Fatal() bool { return errors.Is(e, ErrSessionExpired) }

// classify maps an API error to its class. The code is checked before the
// type because session expiry arrives as type invalid_request_error with code
// session_expired ("Your session hit the maximum duration of 60 minutes.").
func classify(typ, code, msg string) error {
	switch {
	case code == "session_expired" || strings.Contains(msg, "maximum duration"):
		return ErrSessionExpired
	case code == "rate_limit_exceeded" || typ == "rate_limit_error" || typ == "rate_limit_exceeded":
		return ErrRateLimited
	case typ == "server_error" || code == "server_error":
		return ErrServer
	case typ == "invalid_request_error":
		return ErrInvalidRequest
	}
	return nil
}

// CloseError reports why the WebSocket ended. Code is the close code the
// server sent (1000 normal, 1011 server error, ...) or 1006 when the
// connection dropped without a close frame. Cause is the API error that
// preceded the close, if any (for example session expiry).
type CloseError struct {
	Code   int
	Reason string
	Cause  error
}

func (e *CloseError) Error() string {
	s := fmt.Sprintf("realtime: session closed (code %d", e.Code)
	if e.Reason != "" {
		s += ", " + e.Reason
	}
	s += ")"
	if e.Cause != nil {
		s += " after " + e.Cause.Error()
	}
	return s
}

// Unwrap makes a CloseError match both ErrClosed and its cause.
func (e *CloseError) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrClosed, e.Cause}
	}
	return []error{ErrClosed}
}

// MalformedError describes an event we could not decode.
type MalformedError struct {
	Type   string // the event type, if it could be read
	Reason string
	Sample string // the start of the message, for logs
}

func (e *MalformedError) Error() string {
	t := e.Type
	if t == "" {
		t = "?"
	}
	return fmt.Sprintf("realtime: malformed server event type=%s: %s (message starts %q)", t, e.Reason, e.Sample)
}

func (e *MalformedError) Unwrap() error { return ErrMalformedEvent }

func malformed(typ string, data []byte, reason error) *MalformedError {
	const max = 80
	sample := data
	if len(sample) > max {
		sample = sample[:max]
	}
	return &MalformedError{Type: typ, Reason: reason.Error(), Sample: string(sample)}
}

// redact removes the API key from text that came back from the server, since
// error messages sometimes quote the key they rejected.
func redact(s, key string) string {
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "[redacted]")
}
