package telephony

import (
	"context"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
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
	plain := newLibopusEncoder(t, agentCodec)
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
	delay := rate * 25 / 10000 // the encoder's 2.5 ms lookahead
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

// codec is a libopus encoder's settings.
type codec struct {
	name       string
	app        hopus.Application
	complexity int
	bandwidth  hopus.Bandwidth // 0: libopus's choice
	bitrate    int             // 0: libopus's choice
}

// agentCodec is what newVoiceEncoder sets.
var agentCodec = codec{"CELT, complexity 0, wideband, 32 kbit/s", hopus.AppRestrictedLowdelay, AgentOpusComplexity, hopus.Wideband, agentBitrate}

func newLibopusEncoder(t testing.TB, c codec) *hopus.Encoder {
	enc, err := hopus.NewEncoder(rate, 1, c.app)
	require.NoError(t, err)
	require.NoError(t, enc.SetComplexity(c.complexity))
	if c.bandwidth != 0 {
		require.NoError(t, enc.SetMaxBandwidth(c.bandwidth))
	}
	if c.bitrate != 0 {
		require.NoError(t, enc.SetBitrate(c.bitrate))
	}
	return enc
}

// BenchmarkVoiceEncoder: a frame of the agent's voice, a third of them
// digital silence as between turns: the player's encoder, against libopus
// encoding every frame with the player's settings and with those it had
// before (SILK at complexity 5 and full band, then 3 and 1 at wideband;
// CELT at complexity 1).
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
	for _, c := range []codec{
		{"SILK, complexity 5, fullband", hopus.AppVoIP, 5, 0, 0},
		{"SILK, complexity 3, wideband", hopus.AppVoIP, 3, hopus.Wideband, 0},
		{"SILK, complexity 1, wideband", hopus.AppVoIP, 1, hopus.Wideband, 0},
		{"CELT, complexity 1, wideband, 32 kbit/s", hopus.AppRestrictedLowdelay, 1, hopus.Wideband, agentBitrate},
		agentCodec,
	} {
		b.Run("every frame, "+c.name, func(b *testing.B) {
			enc := newLibopusEncoder(b, c)
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

// The agent's codec (CELT) keeps spoken audio as well as the SILK setting
// it replaced where the callee hears it: within a G.711 call's band
// (0.1-3.4 kHz) its decoded spectrum is no further from the source, and
// within 1 dB of it above (3.4-7 kHz, what only a G.722 call carries).
func TestAgentCodecKeepsSpeechAsWellAsSILK(t *testing.T) {
	speech, err := realtimesim.Espeak(context.Background(),
		"Hello, this is Riverside Dental. I am calling to confirm your appointment on Tuesday at ten thirty in the morning.")
	require.NoError(t, err)
	speech = speech[:len(speech)/frame*frame]

	sink := &packetSink{}
	enc, err := newVoiceEncoder(sink, rate, AgentOpusComplexity, nil)
	require.NoError(t, err)
	silk := newLibopusEncoder(t, codec{"SILK, complexity 1, wideband", hopus.AppVoIP, 1, hopus.Wideband, 0})
	var silkPkts [][]byte
	buf := make([]byte, 1500)
	for i := 0; i < len(speech); i += frame {
		require.NoError(t, enc.write(time.Now(), speech[i:i+frame]))
		n, err := silk.Encode(speech[i:i+frame], buf)
		require.NoError(t, err)
		silkPkts = append(silkPkts, append([]byte(nil), buf[:n]...))
	}
	agentLow, agentHigh := spectralDistance(speech, decodeStream(t, sink.pkts))
	silkLow, silkHigh := spectralDistance(speech, decodeStream(t, silkPkts))
	t.Logf("log-spectral distance 0.1-3.4 kHz / 3.4-7 kHz: agent %.2f / %.2f dB, SILK %.2f / %.2f dB",
		agentLow, agentHigh, silkLow, silkHigh)
	require.LessOrEqual(t, agentLow, silkLow, "the phone band")
	require.Less(t, agentHigh, silkHigh+1, "the wideband rest")
}

// spectralDistance is the RMS difference in dB between the spectra of
// input and decoded, over the voiced 1024-sample windows, in the 0.1-3.4
// and 3.4-7 kHz bands; decoded is first aligned on input (the codec's
// delay).
func spectralDistance(input, decoded []int16) (low, high float64) {
	delay, best := 0, math.Inf(-1)
	for d := range 400 {
		var s float64
		for i := 0; i+d < len(decoded) && i < len(input); i += 3 {
			s += float64(input[i]) * float64(decoded[i+d])
		}
		if s > best {
			delay, best = d, s
		}
	}
	const win = 1024
	var hann, cos, sin [win]float64
	for n := range win {
		hann[n] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(n)/win)
		sin[n], cos[n] = math.Sincos(2 * math.Pi * float64(n) / win)
	}
	power := func(x []int16, k int) float64 {
		var re, im float64
		for n, v := range x {
			w := hann[n] * float64(v)
			re += w * cos[k*n%win]
			im -= w * sin[k*n%win]
		}
		return re*re + im*im + 1e3 // a floor, so silent bins do not dominate
	}
	windows := 0
	for i := 0; i+win+delay <= len(decoded) && i+win <= len(input); i += win {
		x, y := input[i:i+win], decoded[i+delay:i+delay+win]
		var energy float64
		for _, v := range x {
			energy += float64(v) * float64(v)
		}
		if energy/win < 300*300 {
			continue // a pause
		}
		var lo, hi float64
		var nlo, nhi int
		for k := 1; k < win/2; k++ {
			f := float64(k) * rate / win
			if f < 100 || f >= 7000 {
				continue
			}
			d := 10 * math.Log10(power(y, k)/power(x, k))
			if f < 3400 {
				lo, nlo = lo+d*d, nlo+1
			} else {
				hi, nhi = hi+d*d, nhi+1
			}
		}
		low += math.Sqrt(lo / float64(nlo))
		high += math.Sqrt(hi / float64(nhi))
		windows++
	}
	return low / float64(windows), high / float64(windows)
}
