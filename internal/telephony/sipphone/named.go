package sipphone

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/calleesim"
)

// ScriptNames are the scripts Named knows, besides a final status.
var ScriptNames = []string{"talk", "voicemail", "ivr", "busy", "declined", "unavailable", "ring", "hangup"}

// TalkLines are what the "talk" script says, one line per turn: the
// front desk confirming an appointment (make dev's sample call).
var TalkLines = []string{"Hello, this is the front desk.", "Yes, that time works for us.", "Thank you. Goodbye."}

// Named builds a script by name, for cmd/sipphone and the tests that run
// make dev's phone: talk (TalkLines, a turn each), voicemail, ivr (press
// a digit), busy, declined, unavailable, ring (until the caller gives up),
// hangup (mid-sentence), or a final status such as "404". Spoken lines are
// made with espeak-ng.
func Named(ctx context.Context, name string) (Script, error) {
	say := func(lines ...string) ([][]int16, error) {
		out := make([][]int16, len(lines))
		for i, l := range lines {
			var err error
			if out[i], err = calleesim.Speech(ctx, l, SampleRate); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	switch name {
	case "talk":
		lines, err := say(TalkLines...)
		return Talk(lines...), err
	case "voicemail":
		lines, err := say("You have reached the clinic. Please leave a message after the tone.")
		if err != nil {
			return Script{}, err
		}
		return Voicemail(lines[0]), nil
	case "ivr":
		lines, err := say("Thank you for calling. Press 2 for the front desk.")
		if err != nil {
			return Script{}, err
		}
		return IVR(lines[0], 1), nil
	case "busy":
		return Busy(), nil
	case "declined":
		return Declined(), nil
	case "unavailable":
		return Unavailable(), nil
	case "ring":
		return RingOut(), nil
	case "hangup":
		return HangUpMidSentence(time.Second), nil
	}
	if code, err := strconv.Atoi(name); err == nil && code >= 400 && code <= 699 {
		return Refuse(code, time.Second), nil
	}
	return Script{}, fmt.Errorf("sipphone: unknown script %q (want one of %v or a status 400-699)", name, ScriptNames)
}
