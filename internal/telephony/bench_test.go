package telephony

import (
	"math"
	"testing"
	"time"

	msdk "github.com/livekit/media-sdk"
	"github.com/livekit/media-sdk/opus"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
	"go.uber.org/zap"
)

// Our side of a call's media, per 20 ms frame; a call moves 50 frames a
// second each way, so (send + receive ns/op) × 50 / 1e9 is the share of one
// core its audio costs us. The SDK's RTP/SRTP/ICE work comes on top.

// BenchmarkSendFrame: queue → frame → Opus at 24 kHz (no resampling) → the
// track (unbound here, so the RTP write itself is not measured). The agent
// speaks all the time here: a call's silences cost far less
// (BenchmarkVoiceEncoder).
func BenchmarkSendFrame(b *testing.B) {
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "bench", "bench")
	if err != nil {
		b.Fatal(err)
	}
	enc, err := newVoiceEncoder(msdk.FromSampleWriter[opus.Sample](track, DefaultSampleRate, FrameDuration), DefaultSampleRate, AgentOpusComplexity, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := makePlayer(PlayerOptions{MaxQueue: DefaultMaxQueue * 100}, nil)
	p.Open()
	speech := tone(440, DefaultSampleRate, 50*frame)
	f := make([]int16, frame)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%50 == 0 {
			if err := p.Write("x", speech); err != nil {
				b.Fatal(err)
			}
		}
		p.fill(f)
		if err := enc.write(time.Time{}, f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiveFrame: Opus decoded natively at 24 kHz into the peer
// writer, the path the callee's voice takes to the agent.
func BenchmarkReceiveFrame(b *testing.B) {
	w := &peerWriter{rate: DefaultSampleRate, first: func() {}}
	w.live.Store(true)
	benchmarkDecode(b, w)
}

// BenchmarkReceiveFrameSDKPath: Opus → 48 kHz → soxr → 24 kHz, what the
// SDK's PCMRemoteTrack does (for comparison; it also holds back a frame).
func BenchmarkReceiveFrameSDKPath(b *testing.B) {
	benchmarkDecode(b, msdk.ResampleWriter(discard{}, 48000))
}

func benchmarkDecode(b *testing.B, w msdk.PCM16Writer) {
	var packets []opus.Sample
	enc, err := opus.Encode(msdk.FromSampleWriter[opus.Sample](collector{&packets}, 48000, FrameDuration), 1, sdkLogger(zap.NewNop()))
	if err != nil {
		b.Fatal(err)
	}
	src := tone(440, 48000, 50*960)
	for i := range 50 {
		if err := enc.WriteSample(src[i*960 : (i+1)*960]); err != nil {
			b.Fatal(err)
		}
	}
	dec, err := opus.Decode(w, 1, sdkLogger(zap.NewNop()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := dec.WriteSample(packets[i%len(packets)]); err != nil {
			b.Fatal(err)
		}
	}
}

type collector struct{ out *[]opus.Sample }

func (c collector) WriteSample(s pionmedia.Sample) error {
	*c.out = append(*c.out, append(opus.Sample(nil), s.Data...))
	return nil
}

type discard struct{}

func (discard) String() string                     { return "discard" }
func (discard) SampleRate() int                    { return DefaultSampleRate }
func (discard) Close() error                       { return nil }
func (discard) WriteSample(msdk.PCM16Sample) error { return nil }

func tone(freq float64, rate, n int) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return pcm
}
