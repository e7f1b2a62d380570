package realtime

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// SampleRate is the only PCM rate the GA API accepts for audio/pcm, in and out
// (https://developers.openai.com/api/reference/resources/realtime/client-events:
// "PCMAudioFormat ... Only a 24kHz sample rate is supported").
const SampleRate = 24000

// SamplesToMS converts a count of 24 kHz samples to whole milliseconds,
// rounding down so a truncation point never lies beyond audio we had.
func SamplesToMS(samples int) int { return samples * 1000 / SampleRate }

// MSToSamples converts milliseconds to 24 kHz samples.
func MSToSamples(ms int) int { return ms * SampleRate / 1000 }

// appendPCM16Base64 appends pcm as base64 of little-endian 16-bit samples, the
// wire form of input_audio_buffer.append and response.output_audio.delta.
func appendPCM16Base64(dst []byte, pcm []int16) []byte {
	// A 20 ms frame's bytes fit on the stack: no allocation per frame.
	var stack [2 * SampleRate / 25]byte
	raw := stack[:0]
	if 2*len(pcm) > len(stack) {
		raw = make([]byte, 0, 2*len(pcm))
	}
	for _, v := range pcm {
		raw = binary.LittleEndian.AppendUint16(raw, uint16(v))
	}
	return base64.StdEncoding.AppendEncode(dst, raw)
}

// decodePCM16Base64 is the inverse of appendPCM16Base64. b is the base64
// text; scratch, if large enough, holds the decoded bytes on the way.
func decodePCM16Base64(b []byte, scratch []byte) ([]int16, error) {
	n := base64.StdEncoding.DecodedLen(len(b))
	raw := scratch
	if cap(raw) < n {
		raw = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(raw[:n], b)
	if err != nil {
		return nil, fmt.Errorf("audio delta is not base64: %w", err)
	}
	if n%2 != 0 {
		return nil, fmt.Errorf("audio delta has %d bytes, not whole 16-bit samples", n)
	}
	pcm := make([]int16, n/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return pcm, nil
}

// pcmDelta is the delta field of response.output_audio.delta, decoded
// straight from the JSON text: the one large field of the one event that
// comes many times a second, so it skips the string json would make.
type pcmDelta []int16

// deltaScratch holds decoded delta bytes on their way to samples; the read
// loop decodes one delta at a time, but tests decode in parallel.
var deltaScratch = sync.Pool{New: func() any { return new([]byte) }}

func (d *pcmDelta) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return errors.New("audio delta is not a string")
	}
	text := b[1 : len(b)-1]
	if bytes.IndexByte(text, '\\') >= 0 {
		// Escapes are legal JSON but never needed in base64: unquote first.
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		text = []byte(s)
	}
	pcm, err := decodeDeltaText(text)
	if err != nil {
		return err
	}
	*d = pcm
	return nil
}

// decodeDeltaText decodes the base64 text of an audio delta.
func decodeDeltaText(text []byte) ([]int16, error) {
	buf := deltaScratch.Get().(*[]byte)
	defer deltaScratch.Put(buf)
	if n := base64.StdEncoding.DecodedLen(len(text)); cap(*buf) < n {
		*buf = make([]byte, n)
	}
	return decodePCM16Base64(text, *buf)
}
