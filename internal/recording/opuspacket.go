package recording

import (
	"errors"
	"fmt"
)

// Opus packets (RFC 6716 §3) as the recorder handles them: it never
// decodes a packet it can pass through. It needs each packet's frames
// and their duration, to put a packet on the 20 ms grid or split one of
// several 20 ms frames, and it writes one-frame packets back in the
// self-delimiting framing (RFC 6716 Appendix B) that a multistream packet
// needs for every stream but the last (RFC 7845 §5.1.1).

// errPacket is wrapped by every reason a packet is refused.
var errPacket = errors.New("not a valid Opus packet")

// maxFrame is RFC 6716's limit on one frame's length in bytes.
const maxFrame = 1275

// frameSize48k is the duration of one frame of each TOC configuration in
// 48 kHz samples (RFC 6716 §3.1, Table 2): SILK-only, hybrid, CELT-only.
var frameSize48k = [32]int{
	480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880, // SILK NB, MB, WB
	480, 960, 480, 960, // hybrid SWB, FB
	120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, // CELT NB, WB, SWB, FB
}

// opusPacket is a parsed packet: its TOC byte with the frame-count code
// cleared, and its frames (slices of the packet's bytes; a frame of
// length 0 is DTX or a lost frame, which a decoder conceals).
type opusPacket struct {
	toc    byte
	frames [][]byte
}

// stereo reports whether the packet codes two channels.
func (p opusPacket) stereo() bool { return p.toc&0x04 != 0 }

// frameSize is one frame's duration in 48 kHz samples.
func (p opusPacket) frameSize() int { return frameSize48k[p.toc>>3] }

// duration is the packet's in 48 kHz samples.
func (p opusPacket) duration() int { return p.frameSize() * len(p.frames) }

// parseOpus splits b into its frames without copying. frames is reused
// for the result.
func parseOpus(b []byte, frames [][]byte) (opusPacket, error) {
	if len(b) == 0 {
		return opusPacket{}, fmt.Errorf("%w: empty", errPacket)
	}
	p := opusPacket{toc: b[0] &^ 0x03, frames: frames[:0]}
	rest := b[1:]
	switch b[0] & 0x03 {
	case 0:
		if len(rest) > maxFrame {
			return p, fmt.Errorf("%w: a frame of %d bytes", errPacket, len(rest))
		}
		p.frames = append(p.frames, rest)
	case 1:
		if len(rest)%2 != 0 || len(rest)/2 > maxFrame {
			return p, fmt.Errorf("%w: two equal frames in %d bytes", errPacket, len(rest))
		}
		h := len(rest) / 2
		p.frames = append(p.frames, rest[:h], rest[h:])
	case 2:
		n, used, err := frameLength(rest)
		if err != nil || n > len(rest)-used || len(rest)-used-n > maxFrame {
			return p, fmt.Errorf("%w: two frames, bad first length", errPacket)
		}
		rest = rest[used:]
		p.frames = append(p.frames, rest[:n], rest[n:])
	default:
		return parseCode3(p, rest)
	}
	if p.duration() > 5760 {
		return p, fmt.Errorf("%w: longer than 120 ms", errPacket)
	}
	return p, nil
}

// parseCode3 reads a packet with an arbitrary number of frames (RFC 6716
// §3.2.5): a count byte, optional padding, and frame lengths unless CBR.
func parseCode3(p opusPacket, rest []byte) (opusPacket, error) {
	if len(rest) < 1 {
		return p, fmt.Errorf("%w: no frame count", errPacket)
	}
	vbr, padded, count := rest[0]&0x80 != 0, rest[0]&0x40 != 0, int(rest[0]&0x3f)
	rest = rest[1:]
	if count == 0 || count*p.frameSize() > 5760 {
		return p, fmt.Errorf("%w: %d frames", errPacket, count)
	}
	pad := 0
	for padded {
		if len(rest) < 1 {
			return p, fmt.Errorf("%w: padding length cut short", errPacket)
		}
		v := int(rest[0])
		rest = rest[1:]
		if v == 255 {
			pad += 254
		} else {
			pad += v
			padded = false
		}
	}
	if pad > len(rest) {
		return p, fmt.Errorf("%w: %d bytes of padding in %d", errPacket, pad, len(rest))
	}
	rest = rest[:len(rest)-pad]
	if !vbr {
		if len(rest)%count != 0 || len(rest)/count > maxFrame {
			return p, fmt.Errorf("%w: %d equal frames in %d bytes", errPacket, count, len(rest))
		}
		n := len(rest) / count
		for i := range count {
			p.frames = append(p.frames, rest[i*n:(i+1)*n])
		}
		return p, nil
	}
	lengths := make([]int, count-1)
	total := 0
	for i := range lengths {
		n, used, err := frameLength(rest)
		if err != nil {
			return p, err
		}
		lengths[i], total, rest = n, total+n, rest[used:]
	}
	if total > len(rest) || len(rest)-total > maxFrame {
		return p, fmt.Errorf("%w: frame lengths exceed the packet", errPacket)
	}
	for _, n := range lengths {
		p.frames = append(p.frames, rest[:n])
		rest = rest[n:]
	}
	p.frames = append(p.frames, rest)
	return p, nil
}

// frameLength reads a one- or two-byte frame length (RFC 6716 §3.2.1).
func frameLength(b []byte) (n, used int, err error) {
	switch {
	case len(b) < 1:
		return 0, 0, fmt.Errorf("%w: frame length cut short", errPacket)
	case b[0] < 252:
		return int(b[0]), 1, nil
	case len(b) < 2:
		return 0, 0, fmt.Errorf("%w: frame length cut short", errPacket)
	}
	return int(b[1])*4 + int(b[0]), 2, nil
}

func appendFrameLength(dst []byte, n int) []byte {
	if n < 252 {
		return append(dst, byte(n))
	}
	first := 252 + n&3
	return append(dst, byte(first), byte((n-first)/4))
}

// appendFrame writes frame i of p as a packet of its own (code 0): with
// selfDelimited, the frame's length is written too, so the packet can be
// followed by another stream's (RFC 6716 Appendix B).
func (p opusPacket) appendFrame(dst []byte, i int, selfDelimited bool) []byte {
	dst = append(dst, p.toc)
	if selfDelimited {
		dst = appendFrameLength(dst, len(p.frames[i]))
	}
	return append(dst, p.frames[i]...)
}

// silence is a 20 ms Opus packet of digital silence (CELT-only,
// fullband, mono, the silence flag set): what the recording holds for a
// side that sent nothing for a moment. Every decoder plays it as zeros.
var silence = []byte{0xf8, 0xff, 0xfe}
