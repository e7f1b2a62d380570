package sipphone

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// packet is one 20 ms RTP packet of constant samples, n packets into a
// stream that started at RTP timestamp 1000.
func packet(ssrc uint32, n int, sample int16) (rtp.Header, []int16) {
	pcm := make([]int16, frameSamples)
	for i := range pcm {
		pcm[i] = sample
	}
	return rtp.Header{SSRC: ssrc, SequenceNumber: uint16(n), Timestamp: uint32(1000 + n*frameSamples)}, pcm
}

func TestRecordingPlacesPacketsOnTheSendersTimeline(t *testing.T) {
	r := newRecording(DefaultSpeechThreshold, time.Second)
	t0 := time.Now()
	for _, n := range []int{0, 1, 4, 3, 5} { // 2 lost, 3 late (after 4)
		h, pcm := packet(7, n, int16(1000*(n+1)))
		r.add(t0.Add(time.Duration(n)*20*time.Millisecond), h, pcm)
	}
	h, pcm := packet(9, 0, 7000) // a new SSRC continues where the stream stopped
	r.add(t0.Add(120*time.Millisecond), h, pcm)

	frames := r.Frames()
	require.Len(t, frames, 5, "the late packet is not placed")
	require.Equal(t, []int{0, 160, 640, 800, 960}, []int{frames[0].Pos, frames[1].Pos, frames[2].Pos, frames[3].Pos, frames[4].Pos})
	audio := r.Audio()
	require.Equal(t, 7*frameSamples, len(audio))
	require.Equal(t, int16(2000), audio[160])
	require.Equal(t, int16(0), audio[320], "the lost packet is silence")
	require.Equal(t, int16(0), audio[480], "the late packet was not placed")
	require.Equal(t, int16(7000), audio[960])

	q := r.Quality()
	require.Equal(t, 5, q.Packets)
	require.Equal(t, 1, q.Late)
	require.Equal(t, []Gap{{At: t0.Add(80 * time.Millisecond), Pos: 320, Samples: 320}}, q.Gaps)
	require.Equal(t, 40*time.Millisecond, q.Lost)
	require.Equal(t, 140*time.Millisecond, q.Duration)
	require.Equal(t, 7000, q.Peak)
	// All five placed packets are above the threshold, equally long.
	want := math.Sqrt((1000.0*1000 + 2000.0*2000 + 5000.0*5000 + 6000.0*6000 + 7000.0*7000) / 5)
	require.InDelta(t, want, q.SpeechRMS, 0.01)
	// Every placed packet arrived exactly on the stream's clock.
	require.Zero(t, q.TransitSpread)
	require.Zero(t, q.Clipped)
}

func TestRecordingQualityCountsClippingAndLateness(t *testing.T) {
	r := newRecording(DefaultSpeechThreshold, time.Second)
	t0 := time.Now()
	h, pcm := packet(1, 0, 32124) // µ-law's largest value: a saturated signal
	r.add(t0, h, pcm)
	h, pcm = packet(1, 1, -32124)
	r.add(t0.Add(65*time.Millisecond), h, pcm) // 45 ms late against the stream
	q := r.Quality()
	require.Equal(t, 2*frameSamples, q.Clipped)
	require.Equal(t, 32124, q.Peak)
	require.Equal(t, 45*time.Millisecond, q.TransitSpread)
}

func TestRecordingKeepsAudioUpToItsBound(t *testing.T) {
	r := newRecording(DefaultSpeechThreshold, 30*time.Millisecond) // 240 samples
	for n := range 3 {
		h, pcm := packet(1, n, 500)
		r.add(time.Now(), h, pcm)
	}
	require.Equal(t, 240, len(r.Audio()))
	require.Len(t, r.Frames(), 3, "levels are kept for the whole call")
}

func TestRecordingSpansBridgeShortPauses(t *testing.T) {
	r := newRecording(DefaultSpeechThreshold, time.Second)
	t0 := time.Now()
	levels := []int16{0, 2000, 2000, 0, 0, 2000, 0, 0, 0, 0, 0, 0, 3000, 0}
	for n, v := range levels {
		h, pcm := packet(1, n, v)
		r.add(t0.Add(time.Duration(n)*20*time.Millisecond), h, pcm)
	}
	spans := r.Spans(60 * time.Millisecond)
	require.Len(t, spans, 2)
	require.Equal(t, Span{Start: t0.Add(20 * time.Millisecond), End: t0.Add(100 * time.Millisecond), StartPos: 160, EndPos: 960, PeakRMS: 2000}, spans[0])
	require.Equal(t, 100*time.Millisecond, spans[0].Duration())
	require.Equal(t, 12*frameSamples, spans[1].StartPos)
}

func TestRecordingWaitsWakeOnNewPackets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := newRecording(DefaultSpeechThreshold, time.Second)
	since := time.Now()
	got := make(chan time.Time, 1)
	go func() {
		at, _ := r.WaitQuiet(ctx, since, 40*time.Millisecond)
		got <- at
	}()
	loudAt := since.Add(time.Millisecond)
	for n, v := range []int16{0, 4000, 0, 0} {
		h, pcm := packet(1, n, v)
		at := since.Add(time.Duration(n) * time.Millisecond)
		if v != 0 {
			at = loudAt
		}
		r.add(at, h, pcm)
	}
	require.Equal(t, loudAt, <-got, "the turn ended with the last loud packet, after 40 ms of quiet in the stream")

	at, err := r.WaitSpeech(ctx, since)
	require.NoError(t, err)
	require.Equal(t, loudAt, at)
	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	_, err = r.WaitSpeech(short, loudAt)
	require.ErrorIs(t, err, context.DeadlineExceeded, "no speech arrived after the last loud packet")
}
