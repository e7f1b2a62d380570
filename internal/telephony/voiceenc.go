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
// lookahead (2.5 ms) still holds the voice's last samples, and the
// listener's decoder fades out on real frames.
const silentHangover = 3

// agentBitrate is the agent encoder's bitrate. CELT needs more bits than
// SILK for the same speech: at 32 kbit/s espeak-ng speech decodes closer
// to its source than SILK at complexity 1 and its own 22 kbit/s, in
// waveform (16 against 10 dB SNR) and in spectrum within the 0.1-3.4 kHz
// a G.711 call carries (6.0 against 7.2 dB log-spectral distance), and
// within 0.8 dB of it from 3.4 to 7 kHz (what only a G.722 call carries).
const agentBitrate = 32000

// voiceEncoder is the player's Opus encoder: mono, CELT only (libopus's
// restricted-lowdelay application), at most wideband.
//
// CELT, because encoding was the largest share of a call's CPU that is
// ours to choose: a 20 ms frame costs 16 µs at complexity 0, against
// 70 µs for SILK at complexity 1 (BenchmarkVoiceEncoder), and the callee
// hears it through an 8 kHz G.711 leg (at best 16 kHz G.722) either way.
// It also looks ahead 2.5 ms instead of 6.5.
//
// A voice on the phone is quiet about half the time, and the player sends
// digital silence then; libopus spends time on a frame of zeros too, so
// after silentHangover such frames it sends SilencePacket instead and
// encodes nothing. The encoder goes on from its state after the hangover:
// libopus codes digital silence as CELT silence frames, so its state and
// that of the listener's decoder, which has played CELT silence since,
// agree (a fresh encoder would not: the voice after a silence decoded
// 0.33 dB off its level instead of 0.18, TestVoiceEncoderSkipsSilence...).
// Confined to the pacing goroutine.
type voiceEncoder struct {
	enc    *hopus.Encoder
	out    msdk.WriteCloser[opus.Sample]
	buf    []byte
	quiet  int // frames of digital silence in a row
	onSent func(due time.Time, pkt []byte)
}

func newVoiceEncoder(out msdk.WriteCloser[opus.Sample], rate, complexity int, onSent func(time.Time, []byte)) (*voiceEncoder, error) {
	enc, err := hopus.NewEncoder(rate, 1, hopus.AppRestrictedLowdelay)
	if err != nil {
		return nil, fmt.Errorf("telephony: opus encoder at %d Hz: %w", rate, err)
	}
	if err := enc.SetComplexity(complexity); err != nil {
		return nil, fmt.Errorf("telephony: opus complexity %d: %w", complexity, err)
	}
	// Wideband (8 kHz of audio) is more than any SIP trunk carries (G.722
	// stops at 7 kHz, G.711 at 4): the bits go where the callee hears them.
	if err := enc.SetMaxBandwidth(hopus.Wideband); err != nil {
		return nil, fmt.Errorf("telephony: opus bandwidth: %w", err)
	}
	if err := enc.SetBitrate(agentBitrate); err != nil {
		return nil, fmt.Errorf("telephony: opus bitrate: %w", err)
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
