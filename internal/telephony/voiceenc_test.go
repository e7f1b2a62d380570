package telephony

import (
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/media-sdk/opus"
	"github.com/stretchr/testify/require"
	hopus "gopkg.in/hraban/opus.v2"
)

// packetSink keeps the packets a voiceEncoder sends.
type packetSink struct{ pkts [][]byte }

func (s *packetSink) String() string  { return "packets" }
func (s *packetSink) SampleRate() int { return rate }
func (s *packetSink) Close() error    { return nil }
func (s *packetSink) WriteSample(p opus.Sample) error {
	s.pkts = append(s.pkts, append([]byte(nil), p...))
	return nil
}

// voiceSilenceVoice is 1 s of voice, 1 s of digital silence, 1 s of voice,
// in 20 ms frames.
func voiceSilenceVoice() [][]int16 {
	var frames [][]int16
	for i := range 150 {
		f := make([]int16, frame)
		if i < 50 || i >= 100 {
			for k := range f {
				t := float64(i*frame+k) / rate
				f[k] = int16(6000 * math.Sin(2*math.Pi*220*t) * (0.6 + 0.4*math.Sin(2*math.Pi*3*t)))
			}
		}
		frames = append(frames, f)
	}
	return frames
}

// The encoder sends SilencePacket once a silence has lasted
// silentHangover frames, and real frames again the moment the voice
// comes back; a listener decodes the voice after the silence as well as
// from an encoder that encoded every frame, and the silence as zeros.
// OnSent sees exactly what went out.
func TestVoiceEncoderSkipsSilenceAndKeepsTheVoice(t *testing.T) {
	frames := voiceSilenceVoice()
	var sent [][]byte
	sink := &packetSink{}
	enc, err := newVoiceEncoder(sink, rate, AgentOpusComplexity, func(at time.Time, pkt []byte) {
		require.False(t, at.IsZero())
		sent = append(sent, append([]byte(nil), pkt...))
	})
	require.NoError(t, err)
	full := &packetSink{}
	plain, err := hopus.NewEncoder(rate, 1, hopus.AppVoIP)
	require.NoError(t, err)
	require.NoError(t, plain.SetComplexity(AgentOpusComplexity))
	buf := make([]byte, 1500)
	for _, f := range frames {
		require.NoError(t, enc.write(time.Now(), f))
		n, err := plain.Encode(f, buf)
		require.NoError(t, err)
		require.NoError(t, full.WriteSample(buf[:n]))
	}
	require.Equal(t, sink.pkts, sent, "OnSent sees what was sent")
	for i, p := range sink.pkts {
		quiet := i >= 50+silentHangover && i < 100
		require.Equal(t, quiet, string(p) == string(SilencePacket), "frame %d", i)
	}

	got, want := decodeStream(t, sink.pkts), decodeStream(t, full.pkts)
	input := make([]int16, 0, len(got))
	for _, f := range frames {
		input = append(input, f...)
	}
	delay := rate * 65 / 10000 // the encoder's 6.5 ms lookahead
	second := [2]int{100 * frame, 150*frame - delay}
	g, w := levelError(input, got, delay, second), levelError(input, want, delay, second)
	t.Logf("level error after the silence: %.2f dB; every frame encoded: %.2f dB", g, w)
	require.Less(t, w, 1.0, "the reference decodes at the input's level")
	require.Less(t, g, w+0.5, "the voice after a silence is as good as from an encoder that never skipped")
	quiet := [2]int{(50+silentHangover+1)*frame + delay, 100 * frame}
	for _, v := range got[quiet[0]:quiet[1]] {
		require.Zero(t, v, "the silence decodes as zeros")
	}
}

func decodeStream(t *testing.T, pkts [][]byte) []int16 {
	dec, err := hopus.NewDecoder(rate, 1)
	require.NoError(t, err)
	var out []int16
	pcm := make([]int16, 5760)
	for _, p := range pkts {
		n, err := dec.Decode(p, pcm)
		require.NoError(t, err)
		out = append(out, pcm[:n]...)
	}
	return out
}

// levelError is how far the decoded audio's level is from the input's, in
// dB, averaged over the 20 ms frames of span (a speech codec keeps the
// level and the spectrum, not the waveform).
func levelError(input, decoded []int16, delay int, span [2]int) float64 {
	var sum float64
	n := 0
	for i := span[0]; i+frame <= span[1]; i += frame {
		var in, out float64
		for k := i; k < i+frame; k++ {
			in += float64(input[k]) * float64(input[k])
			out += float64(decoded[k+delay]) * float64(decoded[k+delay])
		}
		sum += math.Abs(10 * math.Log10(out/in))
		n++
	}
	return sum / float64(n)
}

// BenchmarkVoiceEncoder: a frame of the agent's voice, a third of them
// digital silence as between turns: the player's encoder, against libopus
// encoding every frame at complexity 5 and full bandwidth (what the player
// did before) and at its own settings.
func BenchmarkVoiceEncoder(b *testing.B) {
	frames := voiceSilenceVoice()
	b.Run("player", func(b *testing.B) {
		enc, err := newVoiceEncoder(&discardPackets{}, rate, AgentOpusComplexity, nil)
		require.NoError(b, err)
		b.ReportAllocs()
		defer reportCPU(b)()
		for i := range b.N {
			if err := enc.write(time.Time{}, frames[i%len(frames)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name       string
		complexity int
		bandwidth  hopus.Bandwidth
	}{{"every frame, complexity 5, fullband", 5, 0}, {"every frame, complexity 3, wideband", 3, hopus.Wideband}, {"every frame, complexity 1, wideband", AgentOpusComplexity, hopus.Wideband}} {
		b.Run(c.name, func(b *testing.B) {
			enc, err := hopus.NewEncoder(rate, 1, hopus.AppVoIP)
			require.NoError(b, err)
			require.NoError(b, enc.SetComplexity(c.complexity))
			if c.bandwidth != 0 {
				require.NoError(b, enc.SetMaxBandwidth(c.bandwidth))
			}
			buf := make([]byte, 1500)
			b.ReportAllocs()
			defer reportCPU(b)()
			for i := range b.N {
				if _, err := enc.Encode(frames[i%len(frames)], buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU reports the process's CPU time per op when the returned func
// runs: on a shared machine it is steadier than the wall-clock ns/op.
func reportCPU(b *testing.B) func() {
	cpu0 := processCPU()
	b.ResetTimer()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N)/1000, "cpu-µs/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type discardPackets struct{ packetSink }

func (*discardPackets) WriteSample(opus.Sample) error { return nil }
