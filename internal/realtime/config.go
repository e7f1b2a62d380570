package realtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// Defaults match internal/config so a zero Config field behaves like an
// unset environment variable.
const (
	DefaultBaseURL            = "https://api.openai.com/v1"
	DefaultModel              = "gpt-realtime"
	DefaultVoice              = "marin"
	DefaultTranscriptionModel = "gpt-4o-mini-transcribe"
)

// DefaultInputBatch is how much of the callee's voice one
// input_audio_buffer.append carries: two of the phone's 20 ms frames.
// Each message costs a JSON frame, a WebSocket write (a TLS record and a
// syscall) and a wake-up of the writer, whatever its size; at 20 ms those
// were 7% of a call's CPU. Batching two halves that and holds the
// model's ear back by at most one frame (10 ms on average), a small part
// of its VAD's 200 ms or more of silence before it answers.
const DefaultInputBatch = 40 * time.Millisecond

// Config describes one realtime session. BaseURL, APIKey, Model and Voice come
// from OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_REALTIME_MODEL and OPENAI_VOICE;
// the rest from the campaign's agent settings.
type Config struct {
	BaseURL      string // https://api.openai.com/v1; http(s) becomes ws(s)
	APIKey       string
	Model        string
	Voice        string
	Instructions string
	Tools        []Tool
	// InputTranscriptionModel transcribes the callee's speech; empty means
	// DefaultTranscriptionModel. Set NoInputTranscription to turn it off.
	InputTranscriptionModel string
	NoInputTranscription    bool
	VAD                     VAD

	Logger *zap.Logger
	Dialer *websocket.Dialer // nil: a dialer with HandshakeTimeout

	// HandshakeTimeout bounds connect + session.update → session.updated.
	HandshakeTimeout time.Duration // default 10s
	// InputBatch is how much callee audio goes in one
	// input_audio_buffer.append (default DefaultInputBatch); a negative
	// value sends each SendAudio chunk on its own.
	InputBatch time.Duration
	// AudioQueue is how many input_audio_buffer.append messages may wait
	// for the socket before the oldest is dropped; the default holds 2 s
	// of audio.
	AudioQueue int
	// EventBuffer is the capacity of the Events channel.
	EventBuffer int // default 256
	// PingInterval: how often we ping the server. A connection that answers
	// nothing (not even a pong) for two intervals is declared dead, so a
	// half-open socket cannot hang a call. Negative turns pings off.
	PingInterval time.Duration // default 15s
	WriteTimeout time.Duration // default 5s per frame
}

// VAD configures the server's voice activity detection ("server_vad", see
// https://developers.openai.com/api/reference/resources/realtime/client-events
// audio.input.turn_detection). Zero values take the API defaults.
type VAD struct {
	Threshold         float64 // 0..1, default 0.5
	PrefixPaddingMS   int     // default 300
	SilenceDurationMS int     // default 500
	IdleTimeoutMS     int     // 0: no idle timeout
	// NoAutoResponse stops the server from answering when the callee stops
	// speaking (create_response=false).
	NoAutoResponse bool
	// NoInterrupt stops the server from cancelling its response when the
	// callee starts speaking (interrupt_response=false).
	NoInterrupt bool
}

// Tool is a function the model may call. Parameters is a JSON Schema object.
type Tool struct {
	Name        string
	Description string
	Parameters  json.RawMessage
}

const maxMessageBytes = 8 << 20 // a session.updated echoes instructions and tools

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Model == "" {
		c.Model = DefaultModel
	}
	if c.Voice == "" {
		c.Voice = DefaultVoice
	}
	if c.InputTranscriptionModel == "" {
		c.InputTranscriptionModel = DefaultTranscriptionModel
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.InputBatch == 0 {
		c.InputBatch = DefaultInputBatch
	}
	if c.AudioQueue <= 0 {
		c.AudioQueue = int(2 * time.Second / max(c.InputBatch, 20*time.Millisecond))
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = 256
	}
	if c.PingInterval == 0 {
		c.PingInterval = 15 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.VAD.Threshold == 0 {
		c.VAD.Threshold = 0.5
	}
	if c.VAD.PrefixPaddingMS == 0 {
		c.VAD.PrefixPaddingMS = 300
	}
	if c.VAD.SilenceDurationMS == 0 {
		c.VAD.SilenceDurationMS = 500
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.APIKey == "" {
		errs = append(errs, errors.New("realtime: Config.APIKey (OPENAI_API_KEY) is empty"))
	}
	if _, err := realtimeURL(c.BaseURL, c.Model); err != nil {
		errs = append(errs, err)
	}
	if c.VAD.Threshold < 0 || c.VAD.Threshold > 1 {
		errs = append(errs, fmt.Errorf("realtime: Config.VAD.Threshold %v is outside 0..1", c.VAD.Threshold))
	}
	if c.VAD.PrefixPaddingMS < 0 || c.VAD.SilenceDurationMS < 0 || c.VAD.IdleTimeoutMS < 0 {
		errs = append(errs, errors.New("realtime: Config.VAD durations must not be negative"))
	}
	seen := map[string]bool{}
	for i, t := range c.Tools {
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("realtime: Config.Tools[%d].Name is empty", i))
		case seen[t.Name]:
			errs = append(errs, fmt.Errorf("realtime: Config.Tools[%d].Name %q is a duplicate", i, t.Name))
		}
		seen[t.Name] = true
		if len(t.Parameters) > 0 {
			var obj map[string]any
			if err := json.Unmarshal(t.Parameters, &obj); err != nil {
				errs = append(errs, fmt.Errorf("realtime: Config.Tools[%d].Parameters (%s) is not a JSON object: %w", i, t.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// realtimeURL turns OPENAI_BASE_URL into the WebSocket endpoint,
// https://host/v1 → wss://host/v1/realtime?model=<model>
// (https://developers.openai.com/api/docs/guides/realtime-websocket).
func realtimeURL(base, model string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("realtime: Config.BaseURL (OPENAI_BASE_URL) %q: %w", base, err)
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("realtime: Config.BaseURL (OPENAI_BASE_URL) %q must be an http(s) URL like %s", base, DefaultBaseURL)
	}
	if u.Host == "" {
		return "", fmt.Errorf("realtime: Config.BaseURL (OPENAI_BASE_URL) %q has no host", base)
	}
	if model == "" {
		return "", errors.New("realtime: Config.Model (OPENAI_REALTIME_MODEL) is empty")
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/realtime"
	u.RawQuery = url.Values{"model": {model}}.Encode()
	return u.String(), nil
}
