package sipphone

import (
	"time"

	"github.com/docshield/voice-worker/internal/telephony/heard"
	"github.com/pion/rtp"
)

// Defaults of Config.
const (
	DefaultSpeechThreshold = heard.DefaultSpeechThreshold // G.711 silence decodes to a few units, speech to thousands
	DefaultAgentQuiet      = 700 * time.Millisecond
)

// Recording is what the phone heard from the caller (the agent, through
// livekit-sip), each packet placed by its RTP timestamp, so that lost
// packets are silence where they belong (package heard).
type (
	Recording = heard.Recording
	Span      = heard.Span
	Quality   = heard.Quality
)

func newRecording(threshold float64, keep time.Duration) *Recording {
	return heard.New(SampleRate, threshold, keep)
}

// rtpClock turns the caller's RTP timestamps into stream positions: the
// first packet heard is position 0, and a new SSRC continues the timeline
// where the old one stopped, as a receiver's playout would. It belongs to
// the one goroutine reading the call's RTP.
type rtpClock struct {
	started bool
	ssrc    uint32
	base    uint32 // RTP timestamp of stream position 0
}

// place adds one decoded packet to r.
func (c *rtpClock) place(r *Recording, at time.Time, h rtp.Header, pcm []int16) {
	if !c.started || h.SSRC != c.ssrc {
		c.base = h.Timestamp - uint32(r.Next())
		c.ssrc, c.started = h.SSRC, true
	}
	r.Add(at, int(int32(h.Timestamp-c.base)), pcm)
}
