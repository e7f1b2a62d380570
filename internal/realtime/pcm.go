package realtime

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
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
	raw := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
	}
	return base64.StdEncoding.AppendEncode(dst, raw)
}

// decodePCM16Base64 is the inverse of appendPCM16Base64.
func decodePCM16Base64(s string) ([]int16, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("audio delta is not base64: %w", err)
	}
	if len(raw)%2 != 0 {
		return nil, fmt.Errorf("audio delta has %d bytes, not whole 16-bit samples", len(raw))
	}
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return pcm, nil
}
