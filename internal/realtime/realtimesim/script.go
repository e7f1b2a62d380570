package realtimesim

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Script drives every connection to a Server. It is plain data with JSON
// tags so tests, the devstack and `make dev` can share scenario files.
type Script struct {
	// Agent turns, spoken in order: each response (the client's
	// response.create, or the automatic one after a callee turn) takes the
	// next. Once they run out, responses are empty.
	Agent []AgentTurn `json:"agent"`
	// Callee transcripts, in order: the Nth stretch of speech the VAD finds
	// in the client's audio is transcribed as Callee[N] ("" past the end).
	Callee []string `json:"callee,omitempty"`
	Faults []Fault  `json:"faults,omitempty"`

	// ResponseDelayMS is the model's "thinking" time between response.created
	// and the first audio delta.
	ResponseDelayMS int `json:"response_delay_ms,omitempty"`
	// ChunkMS is the audio per response.output_audio.delta (default 100).
	ChunkMS int `json:"chunk_ms,omitempty"`
	// Paced sends audio at real-time rate instead of as fast as possible.
	Paced bool `json:"paced,omitempty"`
	// Voice is "tone" (default: a deterministic voice-like waveform) or
	// "espeak" (espeak-ng speech; Start fails if espeak-ng is missing).
	Voice string `json:"voice,omitempty"`
	VAD   VAD    `json:"vad,omitempty"`
}

// AgentTurn is one agent response.
type AgentTurn struct {
	Text string `json:"text"`
	// AudioMS is the length of the synthesised audio; 0 derives it from the
	// text (about 65 ms a character). Ignored with the espeak voice.
	AudioMS int `json:"audio_ms,omitempty"`
	// Tool makes the response end with a function call. The simulator then
	// waits for the client's function_call_output and response.create.
	Tool *ToolCall `json:"tool,omitempty"`
}

// silent: the turn says and does nothing (the model waits).
func (t AgentTurn) silent() bool { return t.Text == "" && t.Tool == nil }

// ToolCall is a scripted function call.
type ToolCall struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"` // sent as the JSON text of the arguments
}

// VAD tunes the simulator's energy detector. Silence duration and prefix
// padding come from the client's session.update, as on the real server.
type VAD struct {
	// ThresholdRMS is the 20 ms frame RMS (of 32767) that counts as speech.
	ThresholdRMS float64 `json:"threshold_rms,omitempty"` // default 500 (about -36 dBFS)
	// MinSpeechMS of loud frames in a row start a turn.
	MinSpeechMS int `json:"min_speech_ms,omitempty"` // default 60
}

// Point is where in a connection a fault fires.
type Point string

const (
	// AtConnect fires right after session.created.
	AtConnect Point = "connect"
	// AtSessionUpdate fires instead of answering the Nth session.update.
	AtSessionUpdate Point = "session.update"
	// AtResponseCreate fires instead of answering the Nth response.create.
	AtResponseCreate Point = "response.create"
	// AtAudioDelta fires after the Nth output audio delta of the connection.
	AtAudioDelta Point = "audio_delta"
	// AtSpeechStopped fires after the Nth callee turn is transcribed, instead
	// of the automatic response.
	AtSpeechStopped Point = "speech_stopped"
)

// Action is what a fault does.
type Action string

const (
	RateLimit      Action = "rate_limit"      // error event, rate_limit_exceeded
	ServerError    Action = "server_error"    // error event, server_error
	FailResponse   Action = "fail_response"   // a response that ends with status failed
	SessionExpired Action = "session_expired" // error event session_expired, then close 1000
	Drop           Action = "drop"            // close the TCP connection without a close frame
	CloseSocket    Action = "close"           // close frame 1011
	Malformed      Action = "malformed"       // a message that is not JSON
	UnknownEvent   Action = "unknown_event"   // a well-formed event of a type no client knows
	IgnorePings    Action = "ignore_pings"    // stop answering pings (a half-open peer)
)

// Fault injects a failure at the Nth occurrence (1-based; 0 means 1) of a
// point in each connection.
type Fault struct {
	At Point  `json:"at"`
	N  int    `json:"n,omitempty"`
	Do Action `json:"do"`
}

func (s Script) withDefaults() Script {
	if s.ChunkMS <= 0 {
		s.ChunkMS = 100
	}
	if s.Voice == "" {
		s.Voice = "tone"
	}
	if s.VAD.ThresholdRMS <= 0 {
		s.VAD.ThresholdRMS = 500
	}
	if s.VAD.MinSpeechMS <= 0 {
		s.VAD.MinSpeechMS = 60
	}
	for i := range s.Faults {
		if s.Faults[i].N <= 0 {
			s.Faults[i].N = 1
		}
	}
	return s
}

// Validate reports script errors naming the field.
func (s Script) Validate() error {
	var errs []error
	if s.Voice != "" && s.Voice != "tone" && s.Voice != "espeak" {
		errs = append(errs, fmt.Errorf("realtimesim: Script.Voice %q: want tone or espeak", s.Voice))
	}
	if s.ResponseDelayMS < 0 || s.ChunkMS < 0 {
		errs = append(errs, errors.New("realtimesim: Script.ResponseDelayMS and ChunkMS must not be negative"))
	}
	for i, t := range s.Agent {
		if t.AudioMS < 0 || t.AudioMS > 10*60*1000 {
			errs = append(errs, fmt.Errorf("realtimesim: Script.Agent[%d].AudioMS %d is outside 0..600000", i, t.AudioMS))
		}
		if t.Tool != nil {
			if t.Tool.Name == "" {
				errs = append(errs, fmt.Errorf("realtimesim: Script.Agent[%d].Tool.Name is empty", i))
			}
			if len(t.Tool.Arguments) > 0 && !json.Valid(t.Tool.Arguments) {
				errs = append(errs, fmt.Errorf("realtimesim: Script.Agent[%d].Tool.Arguments is not JSON", i))
			}
		}
	}
	points := map[Point]bool{AtConnect: true, AtSessionUpdate: true, AtResponseCreate: true, AtAudioDelta: true, AtSpeechStopped: true}
	actions := map[Action]bool{RateLimit: true, ServerError: true, FailResponse: true, SessionExpired: true, Drop: true,
		CloseSocket: true, Malformed: true, UnknownEvent: true, IgnorePings: true}
	for i, f := range s.Faults {
		if !points[f.At] {
			errs = append(errs, fmt.Errorf("realtimesim: Script.Faults[%d].At %q is not a known point", i, f.At))
		}
		if !actions[f.Do] {
			errs = append(errs, fmt.Errorf("realtimesim: Script.Faults[%d].Do %q is not a known action", i, f.Do))
		}
	}
	return errors.Join(errs...)
}
