package call

import (
	"context"
	"math"
	"math/rand/v2"
	"os/exec"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/docshield/voice-worker/internal/telephony/sipphone"
	"github.com/stretchr/testify/require"
)

const beepRate = 24000

// overPhoneLine is what the agent hears of pcm (8 kHz) sent by a phone:
// G.711 µ-law, then up to the agent's 24 kHz (LiveKit's SIP service
// resamples; linear interpolation stands in for its filter).
func overPhoneLine(pcm []int16) []int16 {
	c := sipphone.PCMU.Companded(pcm)
	out := make([]int16, 0, 3*len(c))
	for i, s := range c {
		next := s
		if i+1 < len(c) {
			next = c[i+1]
		}
		for k := range 3 {
			out = append(out, int16(int(s)+(int(next)-int(s))*k/3))
		}
	}
	return out
}

func withNoise(pcm []int16, amplitude int) []int16 {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]int16, len(pcm))
	for i, s := range pcm {
		out[i] = int16(max(-32768, min(32767, int(s)+r.IntN(2*amplitude+1)-amplitude)))
	}
	return out
}

// feedChunks feeds pcm in 20 ms chunks, as the media path delivers it, and
// returns every beep end it reported.
func feedChunks(b *beepDetector, start time.Time, pcm []int16) []time.Time {
	var ends []time.Time
	chunk := beepRate / 50
	for off := 0; off < len(pcm); off += chunk {
		end := min(off+chunk, len(pcm))
		if e := b.feed(start.Add(samplesAt(off, beepRate)), pcm[off:end]); !e.IsZero() {
			ends = append(ends, e)
		}
	}
	return ends
}

func TestBeepDetectorFindsTheEndOfABeep(t *testing.T) {
	zero := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name string
		beep []int16 // at 24 kHz
	}{
		{"1 kHz, loud", calleesim.Tone(1000, 400*time.Millisecond, beepRate, 0.5)},
		{"440 Hz, quiet", calleesim.Tone(440, 300*time.Millisecond, beepRate, 0.05)},
		{"1.4 kHz, noisy", withNoise(calleesim.Tone(1400, 250*time.Millisecond, beepRate, 0.2), 800)},
		{"2 kHz", calleesim.Tone(2000, 500*time.Millisecond, beepRate, 0.3)},
		{"970 Hz over a phone line", overPhoneLine(calleesim.Tone(970, 400*time.Millisecond, 8000, 0.4))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lead := withNoise(make([]int16, beepRate/2), 50) // half a second of line noise
			pcm := append(append(lead, tc.beep...), withNoise(make([]int16, beepRate/2), 50)...)
			ends := feedChunks(newBeepDetector(beepRate), zero, pcm)
			require.Len(t, ends, 1, "one beep, one end")
			want := zero.Add(samplesAt(len(lead)+len(tc.beep), beepRate))
			require.InDelta(t, 0, ends[0].Sub(want).Milliseconds(), 20, "the end within a frame")
		})
	}
}

func TestBeepDetectorIgnoresWhatIsNotABeep(t *testing.T) {
	zero := time.Unix(1_800_000_000, 0)
	cases := map[string][]int16{
		"a click":             calleesim.Tone(1000, 60*time.Millisecond, beepRate, 0.5),
		"silence":             make([]int16, beepRate),
		"noise":               withNoise(make([]int16, beepRate), 4000),
		"a gliding whistle":   glide(500, 1500, 600*time.Millisecond),
		"two tones, mixed in": mix(calleesim.Tone(700, time.Second, beepRate, 0.3), calleesim.Tone(1100, time.Second, beepRate, 0.3)),
	}
	if _, err := exec.LookPath("espeak-ng"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		speech, err := calleesim.Speech(ctx, "Hello, you have reached the front desk of Elm Street Dental. Please leave a message.", beepRate)
		require.NoError(t, err)
		cases["speech"] = speech
		cases["speech over a phone line"] = overPhoneLine(decimate3(speech))
	} else {
		t.Log("espeak-ng not installed: speech cases skipped")
	}
	for name, pcm := range cases {
		require.Empty(t, feedChunks(newBeepDetector(beepRate), zero, pcm), name)
	}
}

func glide(from, to float64, d time.Duration) []int16 {
	n := int(d.Seconds() * beepRate)
	out := make([]int16, n)
	phase := 0.0
	for i := range out {
		f := from + (to-from)*float64(i)/float64(n)
		phase += 2 * 3.141592653589793 * f / beepRate
		out[i] = int16(10000 * math.Sin(phase))
	}
	return out
}

func mix(a, b []int16) []int16 {
	out := make([]int16, len(a))
	for i := range a {
		out[i] = a[i]/2 + b[i]/2
	}
	return out
}

func decimate3(pcm []int16) []int16 {
	out := make([]int16, 0, len(pcm)/3)
	for i := 0; i+2 < len(pcm); i += 3 {
		out = append(out, int16((int(pcm[i])+int(pcm[i+1])+int(pcm[i+2]))/3))
	}
	return out
}
