package telephony

import (
	"fmt"
	"time"

	msdk "github.com/livekit/media-sdk"
	"github.com/livekit/media-sdk/opus"
	hopus "gopkg.in/hraban/opus.v2"
)

// SilencePacket is a 20 ms Opus packet of digital silence (CELT-only,
// fullband, mono, the silence flag set); every decoder plays it as zeros.
var SilencePacket = []byte{0xf8, 0xff, 0xfe}

// silentHangover is how many frames of digital silence are still encoded
// after a voice stops, before SilencePacket stands in: the encoder's
// lookahead (6.5 ms) still holds the voice's last samples, and the
// listener's decoder fades out on real frames.
const silentHangover = 3

// voiceEncoder is the player's Opus encoder: mono, VoIP, at most wideband.
// A voice on the phone is quiet
// about half the time, and the player sends digital silence then; libopus
// spends as long on a frame of zeros as on speech, so after
// silentHangover such frames it sends SilencePacket instead and encodes
// nothing. The first voiced frame after that starts the encoder afresh:
// the listener's decoder has just played CELT silence, and a decoder
// switching from CELT to SILK starts its SILK state afresh too, so the
// two agree from the first frame. Confined to the pacing goroutine.
type voiceEncoder struct {
	enc    *hopus.Encoder
	out    msdk.WriteCloser[opus.Sample]
	buf    []byte
	quiet  int // frames of digital silence in a row
	onSent func(due time.Time, pkt []byte)
}

func newVoiceEncoder(out msdk.WriteCloser[opus.Sample], rate, complexity int, onSent func(time.Time, []byte)) (*voiceEncoder, error) {
	enc, err := hopus.NewEncoder(rate, 1, hopus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("telephony: opus encoder at %d Hz: %w", rate, err)
	}
	if err := enc.SetComplexity(complexity); err != nil {
		return nil, fmt.Errorf("telephony: opus complexity %d: %w", complexity, err)
	}
	// Wideband (8 kHz of audio) is more than any SIP trunk carries (G.722
	// stops at 7 kHz, G.711 at 4); above it libopus adds CELT to SILK
	// (hybrid mode), which costs a quarter more for nothing the callee
	// hears.
	if err := enc.SetMaxBandwidth(hopus.Wideband); err != nil {
		return nil, fmt.Errorf("telephony: opus bandwidth: %w", err)
	}
	return &voiceEncoder{enc: enc, out: out, buf: make([]byte, 1500), onSent: onSent}, nil
}

// write encodes one frame, due at due on the pacer's schedule, and sends
// it.
func (e *voiceEncoder) write(due time.Time, pcm []int16) error {
	pkt, err := e.encode(pcm)
	if err != nil {
		return err
	}
	if e.onSent != nil {
		e.onSent(due, pkt)
	}
	return e.out.WriteSample(pkt)
}

func (e *voiceEncoder) encode(pcm []int16) ([]byte, error) {
	if silent(pcm) {
		if e.quiet++; e.quiet > silentHangover {
			return SilencePacket, nil
		}
	} else {
		if e.quiet > silentHangover {
			if err := e.enc.Reset(); err != nil {
				return nil, fmt.Errorf("telephony: opus reset: %w", err)
			}
		}
		e.quiet = 0
	}
	n, err := e.enc.Encode(pcm, e.buf)
	if err != nil {
		return nil, fmt.Errorf("telephony: opus encode: %w", err)
	}
	return e.buf[:n], nil
}

func silent(pcm []int16) bool {
	for _, v := range pcm {
		if v != 0 {
			return false
		}
	}
	return true
}
