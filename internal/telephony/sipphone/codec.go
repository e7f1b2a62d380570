package sipphone

import (
	"fmt"

	"github.com/emiago/diago/media"
	"github.com/emiago/diago/media/sdp"
	"github.com/zaf/g711"
)

// SampleRate is the rate of all audio the phone speaks and hears: G.711
// carries 8 kHz mono.
const SampleRate = 8000

// frameSamples is one RTP packet of audio: 20 ms, the ptime livekit-sip
// offers and the one every carrier uses for G.711.
const frameSamples = SampleRate / 50

// Codec is the G.711 law the phone answers with.
type Codec string

// The two G.711 laws. livekit-sip offers G722, PCMU, PCMA and
// telephone-event, in that order; the phone answers with exactly one law.
const (
	PCMU Codec = "PCMU" // µ-law, the North American carriers' default
	PCMA Codec = "PCMA" // A-law
)

func (c Codec) orDefault() Codec {
	if c == "" {
		return PCMU
	}
	return c
}

func (c Codec) validate() error {
	switch c.orDefault() {
	case PCMU, PCMA:
		return nil
	}
	return fmt.Errorf("sipphone: Script.Codec %q is not PCMU or PCMA", string(c))
}

// media is the codec as diago names it, for the SDP answer.
func (c Codec) media() media.Codec {
	if c.orDefault() == PCMA {
		return media.CodecAudioAlaw
	}
	return media.CodecAudioUlaw
}

// offeredIn reports whether an SDP offer lists c for audio. diago answers
// an offer that shares only telephone-event, so the phone checks first.
func (c Codec) offeredIn(offer []byte) bool {
	sd := sdp.SessionDescription{}
	if sdp.Unmarshal(offer, &sd) != nil {
		return false
	}
	md, err := sd.MediaDescription("audio")
	if err != nil {
		return false
	}
	codecs := make([]media.Codec, len(md.Formats))
	n, _ := media.CodecsFromSDPRead(md.Formats, sd.Values("a"), codecs)
	for _, o := range codecs[:n] {
		if o.Matches(c.media()) {
			return true
		}
	}
	return false
}

// encode writes pcm as G.711 into dst (one byte a sample).
func (c Codec) encode(dst []byte, pcm []int16) {
	enc := g711.EncodeUlawFrame
	if c.orDefault() == PCMA {
		enc = g711.EncodeAlawFrame
	}
	for i, s := range pcm {
		dst[i] = enc(s)
	}
}

// decode returns the PCM of a G.711 payload.
func (c Codec) decode(payload []byte) []int16 {
	dec := g711.DecodeUlawFrame
	if c.orDefault() == PCMA {
		dec = g711.DecodeAlawFrame
	}
	pcm := make([]int16, len(payload))
	for i, b := range payload {
		pcm[i] = dec(b)
	}
	return pcm
}

// Companded is pcm as it sounds after a G.711 round trip: what a perfect
// line delivers, so a test can compare heard audio with sent audio exactly.
func (c Codec) Companded(pcm []int16) []int16 {
	b := make([]byte, len(pcm))
	c.encode(b, pcm)
	return c.decode(b)
}
