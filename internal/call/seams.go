package call

import (
	"time"

	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/livekit/protocol/livekit"
)

// The call's loop talks to the model and to the phone leg through these
// small interfaces, not the concrete clients, so its logic (barge-in,
// closing, timers, failure counting, tools, shutdown) runs in table tests
// on a fake clock without a server (loop_test.go). The real ones are
// *realtime.Session, *telephony.Player and *telephony.Participant.

// modelSession is what a call uses of its model session.
type modelSession interface {
	Events() <-chan realtime.Event
	// Err says why the session ended once Events is closed.
	Err() error
	Close() error
	// SendAudio takes the callee's voice; it never blocks.
	SendAudio(pcm []int16) error
	CreateResponse(instructions string) error
	CancelResponse() error
	SendToolOutput(callID, output string) error
	Interrupt(itemID string) (realtime.Truncation, error)
	AssistantAudio(itemID ...string) realtime.AssistantAudio
	MarkPlayed(itemID string, samples int)
	Stats() realtime.Stats
}

// voicePlayer is the agent's voice on the phone leg: audio queued per
// item and paced out in real time.
type voicePlayer interface {
	Write(item string, pcm []int16) error
	Clear() telephony.Cleared
	Played(item string) (time.Duration, bool)
	Queued() time.Duration
	// Hold keeps queued audio back (silence goes out) until Release.
	Hold()
	Release()
}

// phoneLeg is what the loop watches of the agent's seat in the room.
type phoneLeg interface {
	PeerLeft() <-chan struct{}
	Disconnected() <-chan struct{}
	DisconnectReason() livekit.DisconnectReason
	// ReconnectingSince is when the connection to LiveKit went down and
	// began to be retried; zero while connected.
	ReconnectingSince() time.Time
	// SendDTMF presses keys on the callee's phone line.
	SendDTMF(keys string) error
}

var (
	_ modelSession = (*realtime.Session)(nil)
	_ voicePlayer  = (*telephony.Player)(nil)
	_ phoneLeg     = (*telephony.Participant)(nil)
)
