package realtimesim

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
)

// ClientEvent is one event a client sent. Audio appends are not kept here
// (they arrive 50 times a second); Log counts them instead.
type ClientEvent struct {
	Conn int             `json:"conn"`
	Type string          `json:"type"`
	Raw  json.RawMessage `json:"raw"`
}

// Truncate is a recorded conversation.item.truncate.
type Truncate struct {
	Conn         int    `json:"conn"`
	ItemID       string `json:"item_id"`
	ContentIndex int    `json:"content_index"`
	AudioEndMS   int    `json:"audio_end_ms"`
}

// ToolOutput is a recorded function_call_output item.
type ToolOutput struct {
	Conn   int    `json:"conn"`
	CallID string `json:"call_id"`
	Output string `json:"output"`
}

// ResponseRecord is a response the simulator produced.
type ResponseRecord struct {
	Conn   int    `json:"conn"`
	ID     string `json:"id"`
	Status string `json:"status"` // in_progress, completed, cancelled, failed
	// Reason is the cancel reason: turn_detected or client_cancelled.
	Reason string `json:"reason,omitempty"`
	// Instructions from the client's response.create ("" for automatic ones).
	Instructions string `json:"instructions,omitempty"`
	AudioSamples int    `json:"audio_samples"` // agent audio sent
	ToolCallID   string `json:"tool_call_id,omitempty"`
	// Turn is the index of the script's agent turn it says; -1 for none
	// (the script ran out).
	Turn int `json:"turn"`
}

// CalleeTurn is a stretch of speech the VAD found in the client's audio.
type CalleeTurn struct {
	Conn         int    `json:"conn"`
	ItemID       string `json:"item_id"`
	AudioStartMS int    `json:"audio_start_ms"`
	AudioEndMS   int    `json:"audio_end_ms"` // 0 while still speaking
	Transcript   string `json:"transcript"`
}

// Log is everything the simulator saw and did, for assertions.
type Log struct {
	Connections  int              `json:"connections"`
	Disconnects  int              `json:"disconnects"` // connections that have ended
	Events       []ClientEvent    `json:"events"`
	AudioAppends int              `json:"audio_appends"`
	AudioSamples int              `json:"audio_samples"` // callee audio received
	Truncates    []Truncate       `json:"truncates"`
	ToolOutputs  []ToolOutput     `json:"tool_outputs"`
	Responses    []ResponseRecord `json:"responses"`
	CalleeTurns  []CalleeTurn     `json:"callee_turns"`
	Faults       []Fault          `json:"faults"` // faults that fired
}

// EventsOfType returns the recorded client events of one type.
func (l Log) EventsOfType(typ string) []ClientEvent {
	var out []ClientEvent
	for _, e := range l.Events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// recorder guards the Log and wakes waiters on every change.
type recorder struct {
	mu      sync.Mutex
	log     Log
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) update(f func(*Log)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.log)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) snapshot() (Log, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.log
	l.Events = slices.Clone(l.Events)
	l.Truncates = slices.Clone(l.Truncates)
	l.ToolOutputs = slices.Clone(l.ToolOutputs)
	l.Responses = slices.Clone(l.Responses)
	l.CalleeTurns = slices.Clone(l.CalleeTurns)
	l.Faults = slices.Clone(l.Faults)
	return l, r.changed
}

// waitFor blocks until cond holds for the log or ctx ends.
func (r *recorder) waitFor(ctx context.Context, cond func(Log) bool) (Log, error) {
	for {
		l, changed := r.snapshot()
		if cond(l) {
			return l, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return l, ctx.Err()
		}
	}
}
