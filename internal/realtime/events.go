package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Event is a server event the session understood. Server event names and
// fields follow the GA reference,
// https://developers.openai.com/api/reference/resources/realtime/server-events
// (GA renamed the beta response.audio.* events to response.output_audio.*
// and response.audio_transcript.* to response.output_audio_transcript.*).
type Event interface {
	EventType() string
}

// SessionInfo is the effective configuration the server reports.
type SessionInfo struct {
	ID    string `json:"id"`
	Model string `json:"model"`
	// Raw is the whole session object, for logs and assertions.
	Raw json.RawMessage `json:"-"`
}

// SessionCreated: the first event on a new connection.
type SessionCreated struct{ Session SessionInfo }

// SessionUpdated answers a session.update with the full configuration.
type SessionUpdated struct{ Session SessionInfo }

// SpeechStarted: server VAD heard the callee start speaking. With
// interrupt_response the server cancels its in-progress response; the caller
// must stop playout and truncate (see Session.Interrupt).
type SpeechStarted struct {
	ItemID       string `json:"item_id"`
	AudioStartMS int    `json:"audio_start_ms"`
}

// SpeechStopped: server VAD heard the callee stop; AudioEndMS includes the
// configured silence duration.
type SpeechStopped struct {
	ItemID     string `json:"item_id"`
	AudioEndMS int    `json:"audio_end_ms"`
}

// InputCommitted: the callee's audio became a user item.
type InputCommitted struct {
	ItemID         string `json:"item_id"`
	PreviousItemID string `json:"previous_item_id"`
}

// InputTranscript: transcription of a callee item finished. It may arrive
// after the agent's answer has started.
type InputTranscript struct {
	ItemID       string `json:"item_id"`
	ContentIndex int    `json:"content_index"`
	Transcript   string `json:"transcript"`
}

// ResponseCreated: the model started a response.
type ResponseCreated struct{ Response Response }

// ResponseDone: a response ended (completed, cancelled, failed, incomplete).
type ResponseDone struct{ Response Response }

// Response is the response object of response.created / response.done.
type Response struct {
	ID            string         `json:"id"`
	Status        string         `json:"status"`
	StatusDetails *StatusDetails `json:"status_details"`
	Output        []Item         `json:"output"`
	Usage         *Usage         `json:"usage"`
}

// Err returns the error of a failed response, classified like an error event.
func (r Response) Err() error {
	if r.Status != "failed" {
		return nil
	}
	if r.StatusDetails != nil && r.StatusDetails.Error != nil {
		return r.StatusDetails.Error
	}
	return &APIError{Type: "server_error", Message: "response failed without details"}
}

// StatusDetails says why a response was cancelled, incomplete or failed.
type StatusDetails struct {
	Type   string    `json:"type"`
	Reason string    `json:"reason"` // turn_detected, client_cancelled, max_output_tokens, ...
	Error  *APIError `json:"error"`
}

// Usage is billing usage for one response, including audio tokens.
type Usage struct {
	TotalTokens       int `json:"total_tokens"`
	InputTokens       int `json:"input_tokens"`
	OutputTokens      int `json:"output_tokens"`
	InputTokenDetails struct {
		TextTokens   int `json:"text_tokens"`
		AudioTokens  int `json:"audio_tokens"`
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_token_details"`
	OutputTokenDetails struct {
		TextTokens  int `json:"text_tokens"`
		AudioTokens int `json:"audio_tokens"`
	} `json:"output_token_details"`
}

// Item is a conversation item as far as a call needs it: assistant/user
// messages and function calls.
type Item struct {
	ID        string `json:"id"`
	Type      string `json:"type"` // message, function_call, function_call_output
	Role      string `json:"role"`
	Status    string `json:"status"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// OutputItemAdded: a response started an output item.
type OutputItemAdded struct {
	ResponseID  string `json:"response_id"`
	OutputIndex int    `json:"output_index"`
	Item        Item   `json:"item"`
}

// OutputItemDone: a response finished an output item.
type OutputItemDone struct {
	ResponseID  string `json:"response_id"`
	OutputIndex int    `json:"output_index"`
	Item        Item   `json:"item"`
}

// AudioDelta carries agent audio, already decoded to 24 kHz mono samples.
type AudioDelta struct {
	ResponseID   string
	ItemID       string
	OutputIndex  int
	ContentIndex int
	PCM          []int16
}

// AudioDone: no more audio for this item.
type AudioDone struct {
	ResponseID   string `json:"response_id"`
	ItemID       string `json:"item_id"`
	OutputIndex  int    `json:"output_index"`
	ContentIndex int    `json:"content_index"`
}

// TranscriptDelta is part of the text of what the agent is saying.
type TranscriptDelta struct {
	ResponseID string `json:"response_id"`
	ItemID     string `json:"item_id"`
	Delta      string `json:"delta"`
}

// TranscriptDone is the full text of what the agent said in an item.
type TranscriptDone struct {
	ResponseID string `json:"response_id"`
	ItemID     string `json:"item_id"`
	Transcript string `json:"transcript"`
}

// FunctionCall: the model called a tool (response.function_call_arguments.done).
// Answer with Session.SendToolResult(CallID, ...). Arguments is untrusted
// JSON text from the model.
type FunctionCall struct {
	ResponseID  string `json:"response_id"`
	ItemID      string `json:"item_id"`
	OutputIndex int    `json:"output_index"`
	CallID      string `json:"call_id"`
	Name        string `json:"name"`
	Arguments   string `json:"arguments"`
}

// ItemTruncated confirms a conversation.item.truncate.
type ItemTruncated struct {
	ItemID       string `json:"item_id"`
	ContentIndex int    `json:"content_index"`
	AudioEndMS   int    `json:"audio_end_ms"`
}

// RateLimits is sent at the start of each response.
type RateLimits struct {
	Limits []RateLimit `json:"rate_limits"`
}

// RateLimit is one entry of rate_limits.updated.
type RateLimit struct {
	Name         string  `json:"name"` // requests, tokens
	Limit        int     `json:"limit"`
	Remaining    int     `json:"remaining"`
	ResetSeconds float64 `json:"reset_seconds"`
}

// ErrorEvent reports an API error event (*APIError) or a server message we
// could not decode (*MalformedError). Check it with errors.Is against the
// Err* classes. Only ErrSessionExpired ends the session; the others leave it
// usable and the caller decides.
type ErrorEvent struct{ Err error }

func (SessionCreated) EventType() string { return "session.created" }
func (SessionUpdated) EventType() string { return "session.updated" }
func (SpeechStarted) EventType() string  { return "input_audio_buffer.speech_started" }
func (SpeechStopped) EventType() string  { return "input_audio_buffer.speech_stopped" }
func (InputCommitted) EventType() string { return "input_audio_buffer.committed" }
func (InputTranscript) EventType() string {
	return "conversation.item.input_audio_transcription.completed"
}
func (ResponseCreated) EventType() string { return "response.created" }
func (ResponseDone) EventType() string    { return "response.done" }
func (OutputItemAdded) EventType() string { return "response.output_item.added" }
func (OutputItemDone) EventType() string  { return "response.output_item.done" }
func (AudioDelta) EventType() string      { return "response.output_audio.delta" }
func (AudioDone) EventType() string       { return "response.output_audio.done" }
func (TranscriptDelta) EventType() string { return "response.output_audio_transcript.delta" }
func (TranscriptDone) EventType() string  { return "response.output_audio_transcript.done" }
func (FunctionCall) EventType() string    { return "response.function_call_arguments.done" }
func (ItemTruncated) EventType() string   { return "conversation.item.truncated" }
func (RateLimits) EventType() string      { return "rate_limits.updated" }
func (ErrorEvent) EventType() string      { return "error" }

// decodeEvent parses one server message. It returns (nil, type, nil) for an
// event type we do not handle, and a *MalformedError for anything that is not
// a well-formed event of a known type.
func decodeEvent(data []byte) (Event, string, error) {
	if ev, ok := decodeAudioDelta(data); ok {
		return ev, audioDeltaType, nil
	}
	return decodeGeneral(data)
}

// decodeGeneral is decodeEvent for any message: the type first, then the
// event.
func decodeGeneral(data []byte) (Event, string, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, "", malformed("", data, err)
	}
	if head.Type == "" {
		return nil, "", malformed("", data, errors.New("no type"))
	}
	ev, err := decodeKnown(head.Type, data)
	if err != nil {
		return nil, head.Type, malformed(head.Type, data, err)
	}
	return ev, head.Type, nil
}

func decodeKnown(typ string, data []byte) (Event, error) {
	switch typ {
	case "session.created", "session.updated":
		var w struct {
			Session json.RawMessage `json:"session"`
		}
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, err
		}
		var info SessionInfo
		if len(w.Session) > 0 {
			if err := json.Unmarshal(w.Session, &info); err != nil {
				return nil, err
			}
		}
		info.Raw = w.Session
		if typ == "session.created" {
			return SessionCreated{info}, nil
		}
		return SessionUpdated{info}, nil
	case "response.created", "response.done":
		var w struct {
			Response Response `json:"response"`
		}
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, err
		}
		if typ == "response.created" {
			return ResponseCreated{w.Response}, nil
		}
		return ResponseDone{w.Response}, nil
	case audioDeltaType:
		var w audioDeltaWire
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, err
		}
		return w.event(), nil
	case "error":
		var w struct {
			Error *APIError `json:"error"`
		}
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, err
		}
		if w.Error == nil {
			return nil, errors.New("error event without an error object")
		}
		return ErrorEvent{w.Error}, nil
	}
	if mk, ok := plainEvents[typ]; ok {
		return mk(data)
	}
	return nil, nil
}

const audioDeltaType = "response.output_audio.delta"

// audioDeltaWire is response.output_audio.delta on the wire.
type audioDeltaWire struct {
	Type         string   `json:"type"`
	ResponseID   string   `json:"response_id"`
	ItemID       string   `json:"item_id"`
	OutputIndex  int      `json:"output_index"`
	ContentIndex int      `json:"content_index"`
	Delta        pcmDelta `json:"delta"`
}

func (w audioDeltaWire) event() AudioDelta {
	return AudioDelta{ResponseID: w.ResponseID, ItemID: w.ItemID, OutputIndex: w.OutputIndex, ContentIndex: w.ContentIndex, PCM: w.Delta}
}

// decodeAudioDelta is the fast path for the event that comes many times a
// second and is mostly audio. It reads the message in one pass, as a flat
// object whose fields are strings, integers or literals, in any order (the
// API sends the type first; a server marshalling a map sorts the keys),
// and decodes the base64 text where it lies. encoding/json would pass over
// the text three times before the base64 decode: once to find the type,
// once to check the whole message, once to decode it. ok is false for
// anything it does not take as certain, a message that is not a delta,
// an escape or a byte outside ASCII in a string, a nested value, a key
// that only differs in case from one it knows, a number that is not a
// small integer, bad base64, which then takes the general path and its
// errors (the same result, only slower).
func decodeAudioDelta(data []byte) (AudioDelta, bool) {
	sc := deltaScanner{b: data}
	var ev AudioDelta
	var typ, delta []byte
	if !sc.byte('{') {
		return AudioDelta{}, false
	}
	for first := true; ; first = false {
		if first && sc.byte('}') {
			break
		}
		key, ok := sc.str()
		if !ok || !sc.byte(':') {
			return AudioDelta{}, false
		}
		switch string(key) {
		case "type":
			typ, ok = sc.str()
		case "response_id":
			var v []byte
			v, ok = sc.str()
			ev.ResponseID = string(v)
		case "item_id":
			var v []byte
			v, ok = sc.str()
			ev.ItemID = string(v)
		case "output_index":
			ev.OutputIndex, ok = sc.int()
		case "content_index":
			ev.ContentIndex, ok = sc.int()
		case "delta":
			delta, ok = sc.str()
		default:
			ok = !deltaKey(key) && sc.skip()
		}
		if !ok {
			return AudioDelta{}, false
		}
		if sc.byte('}') {
			break
		}
		if !sc.byte(',') {
			return AudioDelta{}, false
		}
	}
	sc.space()
	if sc.i != len(sc.b) || string(typ) != audioDeltaType || delta == nil {
		return AudioDelta{}, false
	}
	pcm, err := decodeDeltaText(delta)
	if err != nil {
		return AudioDelta{}, false
	}
	ev.PCM = pcm
	return ev, true
}

// deltaKey reports whether key names a field of audioDeltaWire in another
// case, which encoding/json would take for it.
func deltaKey(key []byte) bool {
	for _, k := range []string{"type", "response_id", "item_id", "output_index", "content_index", "delta"} {
		if bytes.EqualFold(key, []byte(k)) {
			return true
		}
	}
	return false
}

// deltaScanner reads the JSON of decodeAudioDelta: each method skips the
// white space before what it reads and reports false for anything else.
type deltaScanner struct {
	b []byte
	i int
}

func (s *deltaScanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// byte consumes c if it comes next.
func (s *deltaScanner) byte(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes, and returns its
// text (a slice of the message).
func (s *deltaScanner) str() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// int reads an integer of at most 9 digits.
func (s *deltaScanner) int() (int, bool) {
	s.space()
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	start, n := s.i, 0
	for ; s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9'; s.i++ {
		n = 10*n + int(s.b[s.i]-'0')
	}
	digits := s.i - start
	if digits == 0 || digits > 9 || (digits > 1 && s.b[start] == '0') {
		return 0, false
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// skip passes over the value of a field the event does not use: a string,
// an integer or a literal (event_id, and whatever the API adds).
func (s *deltaScanner) skip() bool {
	s.space()
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, ok := s.str()
		return ok
	case 't', 'f', 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
				s.i += len(lit)
				return true
			}
		}
		return false
	}
	_, ok := s.int()
	return ok
}

// plainEvents decode straight into their struct.
var plainEvents = map[string]func([]byte) (Event, error){
	"input_audio_buffer.speech_started":                     plain[SpeechStarted],
	"input_audio_buffer.speech_stopped":                     plain[SpeechStopped],
	"input_audio_buffer.committed":                          plain[InputCommitted],
	"conversation.item.input_audio_transcription.completed": plain[InputTranscript],
	"response.output_item.added":                            plain[OutputItemAdded],
	"response.output_item.done":                             plain[OutputItemDone],
	"response.output_audio.done":                            plain[AudioDone],
	"response.output_audio_transcript.delta":                plain[TranscriptDelta],
	"response.output_audio_transcript.done":                 plain[TranscriptDone],
	"response.function_call_arguments.done":                 plain[FunctionCall],
	"conversation.item.truncated":                           plain[ItemTruncated],
	"rate_limits.updated":                                   plain[RateLimits],
}

func plain[T Event](data []byte) (Event, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return v, nil
}
