package calleesim

import (
	"github.com/docshield/voice-worker/internal/telephony/heard"
)

// Recording is what the callee heard from the agent (package heard): the
// room's audio arrives as one continuous stream, silence between turns, so
// each chunk is appended where the last one ended.
type (
	Recording = heard.Recording
	Span      = heard.Span
)

// RMS is the root mean square level of pcm, in sample units (0..32767).
func RMS(pcm []int16) float64 { return heard.RMS(pcm) }
