package call

import (
	"math"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/heard"
)

// beepDetector finds the end of an answering machine's beep in the
// callee's audio, so that a voicemail message starts right after it: not
// over the greeting, and not so late that the machine has given up.
//
// A beep is a steady pure tone: every 20 ms frame of it is loud, its zero
// crossings come at a constant interval (one frequency, no harmonics to
// speak of), and that frequency stays put from frame to frame. Speech,
// even a sung vowel, fails the constant-interval test: its harmonics and
// formants cross zero irregularly. Zero crossings cost a comparison per
// sample, nothing next to decoding the audio, so the detector runs on
// every answered call from the answer on (the model may recognise the
// machine only after the beep).
//
// Confined to the media goroutine (media.calleeAudio), under media.detectMu.
type beepDetector struct {
	rate  int
	frame []int16 // the frame being filled
	at    time.Time

	run     int     // tone frames in a row
	runFreq float64 // their frequency (the first frame's)
}

// Beep detection thresholds.
const (
	beepMinRMS      = 400.0  // about -38 dBFS: a beep is loud
	beepMinHz       = 300.0  // machines beep between about 400 Hz
	beepMaxHz       = 3000.0 // and 2 kHz; allow some room
	beepMaxJitter   = 0.08   // crossing interval spread (stddev/mean) of a pure tone
	beepFreqDrift   = 0.04   // frame-to-frame frequency change within one beep
	beepMinDuration = 160 * time.Millisecond
)

func newBeepDetector(rate int) *beepDetector {
	return &beepDetector{rate: rate, frame: make([]int16, 0, rate/50)}
}

// feed takes callee audio that began at at, and returns when a beep ended
// in it (zero if none did).
func (b *beepDetector) feed(at time.Time, pcm []int16) time.Time {
	var ended time.Time
	frameLen := cap(b.frame)
	for len(pcm) > 0 {
		if len(b.frame) == 0 {
			b.at = at
		}
		n := min(frameLen-len(b.frame), len(pcm))
		b.frame = append(b.frame, pcm[:n]...)
		pcm = pcm[n:]
		at = at.Add(samplesAt(n, b.rate))
		if len(b.frame) < frameLen {
			break
		}
		if end := b.frameDone(); !end.IsZero() {
			ended = end
		}
		b.frame = b.frame[:0]
	}
	return ended
}

// frameDone judges the frame just filled.
func (b *beepDetector) frameDone() time.Time {
	freq, tone := toneOf(b.frame, b.rate)
	if tone && (b.run == 0 || math.Abs(freq-b.runFreq) <= beepFreqDrift*b.runFreq) {
		if b.run == 0 {
			b.runFreq = freq
		}
		b.run++
		return time.Time{}
	}
	long := time.Duration(b.run) * samplesAt(len(b.frame), b.rate)
	b.run = 0
	if tone { // another tone: a new run starts here
		b.run, b.runFreq = 1, freq
	}
	if long >= beepMinDuration {
		return b.at // the tone stopped where this frame began
	}
	return time.Time{}
}

// toneOf reports whether a frame is a loud pure tone, and its frequency.
func toneOf(frame []int16, rate int) (float64, bool) {
	level := heard.RMS(frame)
	if level < beepMinRMS {
		return 0, false
	}
	// Zero crossings, placed between samples by interpolation (a tone at
	// an odd frequency crosses between samples). A crossing counts only
	// after the signal went past a hysteresis band on the other side, so
	// quantisation noise near zero (G.711) adds none of its own.
	hyst := level / 8
	var crossings []float64
	swung := 0 // +1 / -1: beyond the band on that side since the last crossing
	for i, v := range frame {
		s := float64(v)
		if i > 0 {
			prev := float64(frame[i-1])
			if (prev < 0) != (s < 0) && swung != 0 && (swung > 0) == (prev >= 0) {
				crossings = append(crossings, float64(i-1)+prev/(prev-s))
				swung = 0
			}
		}
		switch {
		case s > hyst:
			swung = 1
		case s < -hyst:
			swung = -1
		}
	}
	if len(crossings) < 4 {
		return 0, false
	}
	n := float64(len(crossings) - 1)
	mean := (crossings[len(crossings)-1] - crossings[0]) / n
	var dev float64
	for i := 1; i < len(crossings); i++ {
		d := crossings[i] - crossings[i-1] - mean
		dev += d * d
	}
	jitter := math.Sqrt(dev/n) / mean
	freq := float64(rate) / (2 * mean)
	return freq, jitter <= beepMaxJitter && freq >= beepMinHz && freq <= beepMaxHz
}

func samplesAt(n, rate int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / int64(rate))
}
