package recording

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// Ogg framing (RFC 3533) and the Opus mapping (RFC 7845), written here
// rather than with pion's oggwriter: that one takes RTP packets and writes
// one page per packet, while the recorder needs to decide where pages end
// (a segment must end on a page boundary) and to write the stream into
// whichever segment buffer is current.

const (
	pageContinued = 0x01
	pageBOS       = 0x02
	pageEOS       = 0x04

	// maxPagePackets ends a page after about one second of 20 ms packets:
	// small enough for cheap seeking, large enough that the 27-byte page
	// header stays around 1% of the stream.
	maxPagePackets = 50
	// maxLacing is the most lacing values one page can carry.
	maxLacing = 255
)

// oggCRC is the CRC-32 Ogg uses: polynomial 0x04C11DB7, not reflected,
// initial value and final XOR 0 (hash/crc32 only does reflected CRCs).
var oggCRC = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04C11DB7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggChecksum(b []byte) uint32 {
	var crc uint32
	for _, c := range b {
		crc = crc<<8 ^ oggCRC[byte(crc>>24)^c]
	}
	return crc
}

// oggStream writes one logical Ogg stream. It is confined to the mixer
// goroutine. Packets collect into the page being built until flush, which
// appends the page to out; the caller swaps out to start a new segment.
type oggStream struct {
	serial  uint32
	seq     uint32 // of the next page
	granule uint64 // after the last packet added
	lacing  []byte
	body    []byte
	packets int
	bos     bool // the next page is the first
	out     *bytes.Buffer
	page    []byte // reused page assembly buffer
}

func newOggStream(serial uint32, out *bytes.Buffer) *oggStream {
	return &oggStream{
		serial: serial,
		bos:    true,
		out:    out,
		lacing: make([]byte, 0, maxLacing),
		body:   make([]byte, 0, 8<<10),
		page:   make([]byte, 0, 27+maxLacing+8<<10),
	}
}

// header writes a header packet on a page of its own, as RFC 7845 requires
// for both OpusHead and OpusTags.
func (s *oggStream) header(packet []byte) error {
	if err := s.add(packet, 0); err != nil {
		return err
	}
	s.flush(false)
	return nil
}

// packet adds an audio packet worth samples48k of granule time, ending the
// page first when it is full.
func (s *oggStream) packet(packet []byte, samples48k int) error {
	if s.packets >= maxPagePackets || len(s.lacing)+len(packet)/255+1 > maxLacing {
		s.flush(false)
	}
	return s.add(packet, samples48k)
}

func (s *oggStream) add(packet []byte, samples48k int) error {
	// A packet that needs a page of its own or more never comes from a
	// 20 ms Opus frame (at most 1275 bytes); refuse rather than split.
	if len(packet)/255+1 > maxLacing {
		return fmt.Errorf("recording: ogg packet of %d bytes is too large for one page", len(packet))
	}
	for n := len(packet); ; n -= 255 {
		if n < 255 {
			s.lacing = append(s.lacing, byte(n))
			break
		}
		s.lacing = append(s.lacing, 255)
	}
	s.body = append(s.body, packet...)
	s.granule += uint64(samples48k)
	s.packets++
	return nil
}

// pending reports whether packets wait for a page.
func (s *oggStream) pending() bool { return s.packets > 0 }

// flush writes the page being built, if any; eos marks it the stream's last.
func (s *oggStream) flush(eos bool) {
	if s.packets == 0 {
		return
	}
	var flags byte
	if s.bos {
		flags |= pageBOS
		s.bos = false
	}
	if eos {
		flags |= pageEOS
	}
	p := append(s.page[:0], "OggS"...)
	p = append(p, 0, flags)
	p = binary.LittleEndian.AppendUint64(p, s.granule)
	p = binary.LittleEndian.AppendUint32(p, s.serial)
	p = binary.LittleEndian.AppendUint32(p, s.seq)
	p = binary.LittleEndian.AppendUint32(p, 0) // CRC, filled below
	p = append(p, byte(len(s.lacing)))
	p = append(p, s.lacing...)
	p = append(p, s.body...)
	binary.LittleEndian.PutUint32(p[22:], oggChecksum(p))
	s.out.Write(p)
	s.page = p
	s.seq++
	s.lacing, s.body, s.packets = s.lacing[:0], s.body[:0], 0
}

// vendor names the writer in OpusTags. The packets themselves come from
// the senders' encoders.
const vendor = "DocShield voice worker recorder (Opus packets as sent and received)"

// opusHead is the identification header (RFC 7845 §5.1) of the two-voice
// stream: channel mapping family 1, two uncoupled mono streams, stream 0
// (the callee) on channel 0, the left, and stream 1 (the agent) on
// channel 1, the right. The input sample rate is informational; 48 kHz is
// what decoders play Opus at.
func opusHead(preSkip uint16) []byte {
	h := append([]byte("OpusHead"), 1, 2)
	h = binary.LittleEndian.AppendUint16(h, preSkip)
	h = binary.LittleEndian.AppendUint32(h, 48000)
	h = binary.LittleEndian.AppendUint16(h, 0) // output gain
	return append(h,
		1,    // mapping family: Vorbis channel order, here left and right
		2, 0, // two streams, none coupled
		0, 1, // left plays stream 0, right plays stream 1
	)
}

// opusTags is the comment header (RFC 7845 §5.2).
func opusTags(vendor string, comments []string) []byte {
	t := append([]byte("OpusTags"), lengthPrefixed(vendor)...)
	t = binary.LittleEndian.AppendUint32(t, uint32(len(comments)))
	for _, c := range comments {
		t = append(t, lengthPrefixed(c)...)
	}
	return t
}

func lengthPrefixed(s string) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(s))), s...)
}

// lastPage walks a run of whole Ogg pages and returns where the last one
// starts and its granule position.
func lastPage(b []byte) (start int, granule uint64, err error) {
	start = -1
	for off := 0; off < len(b); {
		if len(b)-off < 27 || string(b[off:off+4]) != "OggS" {
			return 0, 0, fmt.Errorf("recording: no Ogg page at byte %d", off)
		}
		n := int(b[off+26])
		if len(b)-off < 27+n {
			return 0, 0, fmt.Errorf("recording: Ogg page at byte %d is cut short", off)
		}
		size := 27 + n
		for _, l := range b[off+27 : off+27+n] {
			size += int(l)
		}
		if len(b)-off < size {
			return 0, 0, fmt.Errorf("recording: Ogg page at byte %d is cut short", off)
		}
		start, granule = off, binary.LittleEndian.Uint64(b[off+6:])
		off += size
	}
	if start < 0 {
		return 0, 0, fmt.Errorf("recording: no Ogg page")
	}
	return start, granule, nil
}

// sealStream returns b (whole pages) with the end-of-stream flag set on its
// last page, as RFC 7845 requires of a stream's last page, and the stream's
// length: a segment whose recorder died becomes the end of its recording.
func sealStream(b []byte) ([]byte, time.Duration, error) {
	start, granule, err := lastPage(b)
	if err != nil {
		return nil, 0, err
	}
	out := append([]byte(nil), b...)
	page := out[start:]
	page[5] |= pageEOS
	binary.LittleEndian.PutUint32(page[22:], 0)
	binary.LittleEndian.PutUint32(page[22:], oggChecksum(page))
	return out, granuleDuration(granule), nil
}

// granuleDuration is the audio up to a granule position: the recorder
// counts 48 kHz samples from 0, one frame's worth per packet.
func granuleDuration(g uint64) time.Duration {
	return time.Duration(g) * time.Second / 48000
}
