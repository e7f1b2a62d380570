package sipphone

import (
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

// The heard audio is placed by RTP timestamp (package heard holds the
// rest of the recording's behaviour): the first packet is position 0, a
// lost one leaves a gap, a late one is not placed, and a new SSRC
// continues where the stream stopped.
func TestRecordingPlacesPacketsOnTheSendersTimeline(t *testing.T) {
	r := newRecording(DefaultSpeechThreshold, time.Second)
	var clock rtpClock
	t0 := time.Now()
	for _, n := range []int{0, 1, 4, 3, 5} { // 2 lost, 3 late (after 4)
		h, pcm := packet(7, n, int16(1000*(n+1)))
		clock.place(r, t0.Add(time.Duration(n)*20*time.Millisecond), h, pcm)
	}
	h, pcm := packet(9, 0, 7000) // a new SSRC continues where the stream stopped
	clock.place(r, t0.Add(120*time.Millisecond), h, pcm)
	h, pcm = packet(9, 2, 100) // and from then on follows its own clock
	clock.place(r, t0.Add(140*time.Millisecond), h, pcm)

	frames := r.Frames()
	require.Len(t, frames, 6, "the late packet is not placed")
	var pos []int
	for _, f := range frames {
		pos = append(pos, f.Pos)
	}
	require.Equal(t, []int{0, 160, 640, 800, 960, 1280}, pos)
	audio := r.Audio()
	require.Equal(t, int16(2000), audio[160])
	require.Equal(t, int16(0), audio[320], "the lost packet is silence")
	require.Equal(t, int16(0), audio[480], "the late packet was not placed")
	require.Equal(t, int16(7000), audio[960])
	require.Equal(t, int16(100), audio[1280])

	q := r.Quality()
	require.Equal(t, 1, q.Late)
	require.Len(t, q.Gaps, 2)
	require.Equal(t, 60*time.Millisecond, q.Lost, "2 packets lost on the first SSRC, 1 on the second")
}
