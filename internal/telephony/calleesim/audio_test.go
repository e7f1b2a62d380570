package calleesim

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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
