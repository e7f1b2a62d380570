package call

import (
	"errors"
	"math"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/heard"
)

// LocalVAD is the worker's own barge-in detector: an energy threshold on
// the callee's audio as it arrives, so the agent's voice stops before the
// model's voice activity detection, a network round trip away, confirms.
// It only listens while the agent is talking. A false alarm (a cough, line
// noise) cuts the agent short, so the threshold sits well above the line's
// noise floor. Zero ThresholdRMS turns it off.
type LocalVAD struct {
	// ThresholdRMS is the 20 ms frame level (of 32767) that counts as
	// speech, e.g. 1000 (about -30 dBFS).
	ThresholdRMS float64
	// MinSpeech of loud frames in a row is speech; default 60 ms.
	MinSpeech time.Duration
}

func (v LocalVAD) validate() error {
	if v.ThresholdRMS < 0 || v.ThresholdRMS > math.MaxInt16 || v.MinSpeech < 0 {
		return errors.New("call: Options.LocalVAD: ThresholdRMS must be within 0..32767 and MinSpeech not negative")
	}
	return nil
}

const (
	vadFrame       = 480 // 20 ms at 24 kHz
	vadDefaultMin  = 60 * time.Millisecond
	vadQuietFrames = 15 // 300 ms of quiet ends an utterance; the next loud run is a new onset
)

// energyVAD finds speech onsets. It is used by one goroutine at a time.
type energyVAD struct {
	threshold float64
	need      int // loud frames in a row for an onset
	buf       []int16
	run       int
	quiet     int
	speaking  bool
}

func newEnergyVAD(v LocalVAD) *energyVAD {
	if v.ThresholdRMS <= 0 {
		return nil
	}
	minSpeech := v.MinSpeech
	if minSpeech <= 0 {
		minSpeech = vadDefaultMin
	}
	return &energyVAD{threshold: v.ThresholdRMS, need: max(1, int(minSpeech/(20*time.Millisecond)))}
}

// feed reports whether pcm holds the start of an utterance.
func (v *energyVAD) feed(pcm []int16) bool {
	onset := false
	v.buf = append(v.buf, pcm...)
	i := 0
	for ; i+vadFrame <= len(v.buf); i += vadFrame {
		if v.frame(v.buf[i : i+vadFrame]) {
			onset = true
		}
	}
	v.buf = append(v.buf[:0], v.buf[i:]...)
	return onset
}

func (v *energyVAD) frame(f []int16) bool {
	loud := heard.RMS(f) >= v.threshold
	if v.speaking {
		if loud {
			v.quiet = 0
		} else if v.quiet++; v.quiet >= vadQuietFrames {
			v.speaking, v.run = false, 0
		}
		return false
	}
	if !loud {
		v.run = 0
		return false
	}
	if v.run++; v.run >= v.need {
		v.speaking, v.quiet = true, 0
		return true
	}
	return false
}
