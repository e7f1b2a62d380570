package calleesim

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const frameSamples = rate / 50

func addFrames(r *Recording, at time.Time, n int, loud bool) time.Time {
	for range n {
		pcm := make([]int16, frameSamples)
		if loud {
			pcm = Tone(440, 20*time.Millisecond, rate, 0.3)
		}
		r.add(at, pcm)
	}
	return at
}

func TestSpansFollowTheStreamNotTheArrivalTimes(t *testing.T) {
	r := newRecording(rate, DefaultSpeechThreshold, 500*time.Millisecond)
	t0 := time.Now()
	addFrames(r, t0, 5, false)
	// 10 loud frames arriving in two bursts a second apart: one utterance
	// in stream time, whatever the network did to it.
	addFrames(r, t0.Add(100*time.Millisecond), 5, true)
	addFrames(r, t0.Add(1100*time.Millisecond), 5, true)
	addFrames(r, t0.Add(1200*time.Millisecond), 20, false) // 400 ms of silence
	addFrames(r, t0.Add(1600*time.Millisecond), 3, true)

	spans := r.Spans(200 * time.Millisecond)
	require.Len(t, spans, 2)
	require.Equal(t, 5*frameSamples, spans[0].StartPos)
	require.Equal(t, 10*frameSamples, spans[0].Samples)
	require.Equal(t, 200*time.Millisecond, spans[0].Duration(rate))
	require.Equal(t, t0.Add(100*time.Millisecond), spans[0].Start)
	require.Equal(t, t0.Add(1100*time.Millisecond), spans[0].End)
	require.Equal(t, 3*frameSamples, spans[1].Samples)

	require.Len(t, r.Spans(500*time.Millisecond), 1, "a longer hangover bridges the pause")
	require.Equal(t, rate/2, len(r.Audio()), "raw audio is kept up to KeepAudio only (760 ms arrived)")
}

func TestWaitQuietCountsSilenceInTheStream(t *testing.T) {
	r := newRecording(rate, DefaultSpeechThreshold, 0)
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
	addFrames(r, loudAt, 10, true)
	addFrames(r, loudAt, 9, false) // 180 ms: not yet
	select {
	case res := <-done:
		t.Fatalf("returned after 180 ms of silence: %+v", res)
	default:
	}
	addFrames(r, loudAt, 1, false) // 200 ms
	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, loudAt, res.at)
}

func TestWaitSpeechEndsWithItsContext(t *testing.T) {
	r := newRecording(rate, DefaultSpeechThreshold, 0)
	addFrames(r, time.Now(), 5, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.WaitSpeech(ctx, time.Time{})
	require.ErrorIs(t, err, context.Canceled)
}

func TestToneLevelTellsTonesApart(t *testing.T) {
	a := Tone(440, 200*time.Millisecond, rate, 0.5)
	require.InDelta(t, 0.5*32767/1.4142, RMS(a), 200)
	require.Greater(t, ToneLevel(a, 440, rate), 20*ToneLevel(a, 600, rate))
	require.Zero(t, RMS(nil))
}

func TestSpeechRendersText(t *testing.T) {
	pcm := speechOrSkip(t, "Hello there")
	d := time.Duration(len(pcm)) * time.Second / rate
	require.Greater(t, d, 300*time.Millisecond)
	require.Less(t, d, 5*time.Second)
	require.Greater(t, RMS(pcm), 300.0)
	_, err := Speech(context.Background(), "", rate)
	require.Error(t, err)
}
