package realtime

import (
	"fmt"
	"testing"
)

// One 20 ms callee frame, the unit the media path sends 50 times a second.
func BenchmarkSendAudio20ms(b *testing.B) {
	s := bareSession(4)
	pcm := make([]int16, SampleRate/50)
	for i := range pcm {
		pcm[i] = int16(i * 37)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SendAudio(pcm); err != nil {
			b.Fatal(err)
		}
		audioBufs.Put(<-s.audio)
	}
}

// One 100 ms agent audio delta, decoded from the wire: the API's shape
// (the type first) and a map's (sorted keys, as the simulator sends it),
// and the general path's cost for comparison.
func BenchmarkDecodeAudioDelta100ms(b *testing.B) {
	pcm := make([]int16, SampleRate/10)
	for i := range pcm {
		pcm[i] = int16(i * 37)
	}
	delta := appendPCM16Base64(nil, pcm)
	for _, c := range []struct {
		name   string
		msg    string
		decode func([]byte) (Event, string, error)
	}{
		{"type first", `{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"%s"}`, decodeEvent},
		{"sorted keys", `{"content_index":0,"delta":"%s","event_id":"event_1","item_id":"item_1","output_index":0,"response_id":"resp_1","type":"response.output_audio.delta"}`, decodeEvent},
		{"general path", `{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"%s"}`, decodeGeneral},
	} {
		b.Run(c.name, func(b *testing.B) {
			msg := []byte(fmt.Sprintf(c.msg, delta))
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, _, err := c.decode(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
