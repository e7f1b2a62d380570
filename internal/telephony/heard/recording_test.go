package heard

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	rate         = 8000
	frameSamples = rate / 50 // 20 ms
	ms20         = 20 * time.Millisecond
)

// level is one 20 ms frame of constant samples.
func level(v int16) []int16 {
	pcm := make([]int16, frameSamples)
	for i := range pcm {
		pcm[i] = v
	}
	return pcm
}

// appendFrames appends n frames, all arriving at at, loud or silent.
func appendFrames(r *Recording, at time.Time, n int, loud bool) {
	for range n {
		v := int16(0)
		if loud {
			v = 2000
		}
		r.Append(at, level(v))
	}
}

func TestSpansFollowTheStreamNotTheArrivalTimes(t *testing.T) {
	r := New(rate, DefaultSpeechThreshold, 500*time.Millisecond)
	t0 := time.Now()
	appendFrames(r, t0, 5, false)
	// 10 loud frames arriving in two bursts a second apart: one utterance
	// in stream time, whatever the network did to it.
	appendFrames(r, t0.Add(100*time.Millisecond), 5, true)
	appendFrames(r, t0.Add(1100*time.Millisecond), 5, true)
	appendFrames(r, t0.Add(1200*time.Millisecond), 20, false) // 400 ms of silence
	appendFrames(r, t0.Add(1600*time.Millisecond), 3, true)

	spans := r.Spans(200 * time.Millisecond)
	require.Len(t, spans, 2)
	require.Equal(t, 5*frameSamples, spans[0].StartPos)
	require.Equal(t, 10*frameSamples, spans[0].Samples)
	require.Equal(t, 200*time.Millisecond, spans[0].Duration())
	require.Equal(t, t0.Add(100*time.Millisecond), spans[0].Start)
	require.Equal(t, t0.Add(1100*time.Millisecond), spans[0].End)
	require.Equal(t, 3*frameSamples, spans[1].Samples)
	require.Equal(t, 60*time.Millisecond, spans[1].Duration())

	require.Len(t, r.Spans(500*time.Millisecond), 1, "a longer hangover bridges the pause")
	require.Len(t, r.Audio(), rate/2, "raw audio is kept up to its bound only (760 ms arrived)")
	require.Len(t, r.Frames(), 38, "levels are kept for the whole stream")
}

func TestSpansBridgeShortPausesAndSplitLongOnes(t *testing.T) {
	r := New(rate, DefaultSpeechThreshold, time.Second)
	t0 := time.Now()
	levels := []int16{0, 2000, 2000, 0, 0, 2500, 0, 0, 0, 0, 0, 0, 3000, 0}
	for n, v := range levels {
		r.Append(t0.Add(time.Duration(n)*ms20), level(v))
	}
	spans := r.Spans(60 * time.Millisecond)
	require.Len(t, spans, 2, "a 40 ms pause is bridged, a 120 ms one splits")
	s := spans[0]
	require.Equal(t, []any{t0.Add(ms20), t0.Add(5 * ms20), 160, 960, 3 * frameSamples, 2500.0},
		[]any{s.Start, s.End, s.StartPos, s.EndPos, s.Samples, s.PeakRMS})
	require.Equal(t, 100*time.Millisecond, s.Duration(), "the bridged pause counts in the span's length")
	require.Equal(t, 12*frameSamples, spans[1].StartPos)
	require.Len(t, r.Spans(120*time.Millisecond), 1)
}

func TestAddPlacesFramesOnTheSendersTimeline(t *testing.T) {
	r := New(rate, DefaultSpeechThreshold, time.Second)
	t0 := time.Now()
	for _, n := range []int{0, 1, 4, 3, 5, 6} { // 2 and 3 lost, then 3 late (after 4)
		r.Add(t0.Add(time.Duration(n)*ms20), n*frameSamples, level(int16(1000*(n+1))))
	}
	require.Equal(t, 7*frameSamples, r.Next())

	frames := r.Frames()
	require.Len(t, frames, 5, "the late frame is not placed")
	var pos []int
	for _, f := range frames {
		pos = append(pos, f.Pos)
	}
	require.Equal(t, []int{0, 160, 640, 800, 960}, pos)
	require.Equal(t, 5000, frames[2].Peak)
	audio := r.Audio()
	require.Len(t, audio, 7*frameSamples)
	require.Equal(t, int16(2000), audio[160])
	require.Equal(t, int16(0), audio[320], "the lost frame is silence")
	require.Equal(t, int16(0), audio[480], "the late frame was not placed")
	require.Equal(t, int16(7000), audio[960])

	q := r.Quality()
	require.Equal(t, 5, q.Packets)
	require.Equal(t, 1, q.Late)
	require.Equal(t, []Gap{{At: t0.Add(4 * ms20), Pos: 320, Samples: 320}}, q.Gaps)
	require.Equal(t, 40*time.Millisecond, q.Lost)
	require.Equal(t, 140*time.Millisecond, q.Duration)
	require.Equal(t, 7000, q.Peak)
	// All five placed frames are above the threshold, equally long.
	want := math.Sqrt((1000.0*1000 + 2000.0*2000 + 5000.0*5000 + 6000.0*6000 + 7000.0*7000) / 5)
	require.InDelta(t, want, q.SpeechRMS, 0.01)
	// Every placed frame arrived exactly on the stream's clock.
	require.Zero(t, q.TransitSpread)
	require.Zero(t, q.Clipped)
}

func TestQualityCountsClippingAndLateness(t *testing.T) {
	r := New(rate, DefaultSpeechThreshold, time.Second)
	t0 := time.Now()
	r.Append(t0, level(32124))                           // µ-law's largest value: a saturated signal
	r.Append(t0.Add(65*time.Millisecond), level(-32124)) // 45 ms late against the stream
	r.Append(t0.Add(70*time.Millisecond), level(ClipLevel-1))
	q := r.Quality()
	require.Equal(t, 2*frameSamples, q.Clipped)
	require.Equal(t, 32124, q.Peak)
	require.Equal(t, 45*time.Millisecond, q.TransitSpread)
	require.Empty(t, q.Gaps)
}

func TestAudioIsKeptUpToItsBound(t *testing.T) {
	r := New(rate, DefaultSpeechThreshold, 30*time.Millisecond) // 240 samples
	for n := range 3 {
		r.Add(time.Now(), n*frameSamples, level(int16(500+n)))
	}
	audio := r.Audio()
	require.Len(t, audio, 240)
	require.Equal(t, int16(501), audio[239])
	require.Len(t, r.Frames(), 3, "levels are kept for the whole stream")
	require.Equal(t, rate, r.SampleRate())
}

func TestWaitQuietCountsSilenceInTheStream(t *testing.T) {
	r := New(rate, DefaultSpeechThreshold, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	since := time.Now()
	loudAt := since.Add(time.Millisecond)

	type result struct {
		at  time.Time
		err error
	}
	done := make(chan result, 1)
	go func() {
		at, err := r.WaitQuiet(ctx, since, 200*time.Millisecond)
		done <- result{at, err}
	}()
	appendFrames(r, since, 3, true) // arrived at since: not after it
	appendFrames(r, loudAt, 10, true)
	appendFrames(r, loudAt.Add(time.Millisecond), 9, false) // 180 ms: not yet
	select {
	case res := <-done:
		t.Fatalf("returned after 180 ms of silence: %+v", res)
	default:
	}
	appendFrames(r, loudAt.Add(time.Millisecond), 1, false) // 200 ms
	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, loudAt, res.at, "the turn ended when the last loud frame arrived")
}

func TestWaitSpeechWakesOnNewFramesAndEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := New(rate, DefaultSpeechThreshold, 0)
	since := time.Now()
	got := make(chan time.Time, 1)
	go func() {
		at, _ := r.WaitSpeech(ctx, since)
		got <- at
	}()
	loudAt := since.Add(2 * time.Millisecond)
	r.Append(since, level(4000)) // not after since
	r.Append(since.Add(time.Millisecond), level(0))
	r.Append(loudAt, level(4000))
	require.Equal(t, loudAt, <-got)

	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	_, err := r.WaitSpeech(short, loudAt)
	require.ErrorIs(t, err, context.DeadlineExceeded, "no speech arrived after the last loud frame")
	canceled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	_, err = r.WaitQuiet(canceled, time.Time{}, time.Second)
	require.ErrorIs(t, err, context.Canceled)
}

func TestWaitFramesChecksEveryNewFrame(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := New(rate, DefaultSpeechThreshold, 0)
	r.Append(time.Now(), level(0))
	done := make(chan error, 1)
	go func() { done <- r.WaitFrames(ctx, func(f []Frame) bool { return len(f) == 3 }) }()
	r.Append(time.Now(), level(0))
	r.Append(time.Now(), level(0))
	require.NoError(t, <-done)
	require.NoError(t, r.WaitFrames(ctx, func(f []Frame) bool { return len(f) >= 3 }), "a condition that holds already returns at once")
}

func TestRMS(t *testing.T) {
	require.Zero(t, RMS(nil))
	require.Equal(t, 3000.0, RMS(level(-3000)))
	require.InDelta(t, math.Sqrt(0.5)*1000, RMS([]int16{1000, 0}), 1e-9)
}
