package recording

import (
	"fmt"

	"gopkg.in/hraban/opus.v2"
)

// reencoder makes 20 ms mono packets for a side whose sender does not send
// them: its packets hold frames of another length (40 or 60 ms SILK frames
// cannot be split, 10 ms ones do not fill a slot) or code two channels.
// The telephony stack sends 20 ms mono packets both ways, so this is the
// exception; it costs what the recorder used to cost for every call (a
// decode and an encode per frame), for that side only. Once a side needs
// it, all of that side's packets go through it, so the decoder's state
// follows the sender's stream. It belongs to the mixer goroutine.
type reencoder struct {
	dec *opus.Decoder
	enc *opus.Encoder
	// pcm is decoded audio not yet encoded; its first sample is at
	// position at (48 kHz samples from the call start), which is also
	// where the last packet made ended while pcm is empty.
	pcm []int16
	at  int64
	buf []int16
	out []byte
}

func newReencoder(o Options) (*reencoder, error) {
	dec, err := opus.NewDecoder(48000, 1)
	if err != nil {
		return nil, fmt.Errorf("recording: opus decoder: %w", err)
	}
	enc, err := opus.NewEncoder(48000, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("recording: opus encoder: %w", err)
	}
	if err := enc.SetBitrate(o.Bitrate); err != nil {
		return nil, fmt.Errorf("recording: opus bitrate %d: %w", o.Bitrate, err)
	}
	if err := enc.SetComplexity(o.Complexity); err != nil {
		return nil, fmt.Errorf("recording: opus complexity %d: %w", o.Complexity, err)
	}
	return &reencoder{dec: dec, enc: enc, buf: make([]int16, 5760), out: make([]byte, maxPacket)}, nil
}

// feed decodes pkt, heard from position at, and hands each whole 20 ms
// packet it completes to emit, with the position of its first sample. A
// packet that does not follow on from the audio still waiting starts a
// new stretch: the rest of the old one is encoded padded with silence.
func (e *reencoder) feed(at int64, pkt []byte, join int64, emit func(at int64, pkt []byte)) error {
	n, err := e.dec.Decode(pkt, e.buf)
	if err != nil {
		return fmt.Errorf("recording: decode a packet to re-encode it: %w", err)
	}
	if len(e.pcm) > 0 {
		if off := at - (e.at + int64(len(e.pcm))); off > join || -off > join {
			if err := e.flush(emit); err != nil {
				return err
			}
		}
	}
	if len(e.pcm) == 0 {
		if off := at - e.at; off > join || -off > join {
			// A new stretch: the recording has silence before it, which
			// decoders play through a mode switch that resets their SILK
			// state, so the encoder starts afresh too.
			if err := e.enc.Reset(); err != nil {
				return fmt.Errorf("recording: reset the re-encoder: %w", err)
			}
		}
		e.at = at
	}
	e.pcm = append(e.pcm, e.buf[:n]...)
	for len(e.pcm) >= frame48 {
		if err := e.encode(emit); err != nil {
			return err
		}
	}
	return nil
}

// flush encodes what is left, padded with silence to a whole frame.
func (e *reencoder) flush(emit func(at int64, pkt []byte)) error {
	if len(e.pcm) == 0 {
		return nil
	}
	e.pcm = append(e.pcm, make([]int16, frame48-len(e.pcm))...)
	return e.encode(emit)
}

func (e *reencoder) encode(emit func(at int64, pkt []byte)) error {
	n, err := e.enc.Encode(e.pcm[:frame48], e.out)
	if err != nil {
		return fmt.Errorf("recording: re-encode: %w", err)
	}
	emit(e.at, append([]byte(nil), e.out[:n]...))
	rest := copy(e.pcm, e.pcm[frame48:])
	e.pcm = e.pcm[:rest]
	e.at += frame48
	return nil
}
