package sipphone

import (
	"context"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"go.uber.org/zap"
)

// Script is how the phone behaves on one call. The zero value answers at
// once and listens until the caller hangs up.
type Script struct {
	// Ring is how long the phone rings (180 Ringing) before it answers or
	// refuses; RingForever rings until the caller cancels. 0 neither rings
	// nor waits.
	Ring time.Duration
	// Status, when not 0, refuses the call with this final response after
	// ringing instead of answering: 486 busy, 603 declined, 480
	// unavailable, 404, ... (a 4xx, 5xx or 6xx).
	Status int
	// Codec is the G.711 law to answer with; "" is PCMU. A caller that does
	// not offer it is refused with 488.
	Codec Codec
	// AgentQuiet is the silence that ends the caller's turn for
	// WaitForAgentTurn; 0 is DefaultAgentQuiet.
	AgentQuiet time.Duration
	// Transfer is how a REFER from the caller is answered.
	Transfer Transfer
	// Steps run in order once the call is answered. After the last step the
	// phone stays on the line until the caller hangs up (or Config.MaxCall).
	Steps []Step
}

// RingForever makes a Script ring until the caller gives up.
const RingForever time.Duration = -1

// Transfer is how the phone, as the carrier, answers a REFER.
type Transfer struct {
	// Refuse, when not 0, answers the REFER itself with this status (403,
	// 405, ...) instead of 202 Accepted.
	Refuse int
	// Result is the final status of the transfer reported by NOTIFY
	// (message/sipfrag) after 202 and a 100 Trying NOTIFY; 0 is 200, the
	// target answered. After a 2xx result the phone ends its own leg with
	// BYE, as a carrier does once the transfer completed; after a failure
	// it stays on the line.
	Result int
}

func (s Script) validate() error {
	if s.Status != 0 && (s.Status < 400 || s.Status > 699) {
		return fmt.Errorf("sipphone: Script.Status %d is not a final error status (400-699)", s.Status)
	}
	if s.Ring < 0 && s.Ring != RingForever {
		return fmt.Errorf("sipphone: Script.Ring %s is negative (use RingForever)", s.Ring)
	}
	if t := s.Transfer; (t.Refuse != 0 && (t.Refuse < 300 || t.Refuse > 699)) || (t.Result != 0 && (t.Result < 200 || t.Result > 699)) {
		return fmt.Errorf("sipphone: Script.Transfer %+v has a status out of range", t)
	}
	if err := s.Codec.validate(); err != nil {
		return err
	}
	for i, st := range s.Steps {
		if st.kind == 0 {
			return fmt.Errorf("sipphone: Script.Steps[%d] has no action (build steps with Say, Pause, ...)", i)
		}
	}
	return nil
}

type stepKind int

const (
	stepSay stepKind = iota + 1
	stepStartSaying
	stepStopSaying
	stepWaitTurn
	stepWaitSpeech
	stepWaitDigits
	stepPause
	stepMark
	stepHangUp
	stepCutMedia
)

// Step is one action of a script; build steps with the functions below.
type Step struct {
	kind stepKind
	pcm  []int16
	d    time.Duration
	n    int
	name string
}

// Say speaks pcm (mono, SampleRate) and waits until all of it was sent.
func Say(pcm []int16) Step { return Step{kind: stepSay, pcm: pcm} }

// StartSaying starts speaking pcm and goes on at once: after
// WaitForAgentSpeech, a barge-in.
func StartSaying(pcm []int16) Step { return Step{kind: stepStartSaying, pcm: pcm} }

// StopSaying cuts the phone off mid-sentence.
func StopSaying() Step { return Step{kind: stepStopSaying} }

// WaitForAgentTurn waits until the caller has spoken and then been quiet
// for the script's AgentQuiet.
func WaitForAgentTurn() Step { return Step{kind: stepWaitTurn} }

// WaitForAgentSpeech waits until the caller starts speaking.
func WaitForAgentSpeech() Step { return Step{kind: stepWaitSpeech} }

// WaitForDigits waits until the call has received n DTMF digits in all
// (typed ahead or not).
func WaitForDigits(n int) Step { return Step{kind: stepWaitDigits, n: n} }

// Pause waits d.
func Pause(d time.Duration) Step { return Step{kind: stepPause, d: d} }

// Mark records the time the script reached it under name (see
// Record.Mark); after a Say, that is when the last of it was heard.
func Mark(name string) Step { return Step{kind: stepMark, name: name} }

// HangUp ends the call with BYE.
func HangUp() Step { return Step{kind: stepHangUp} }

// CutMedia stops the phone's RTP for the rest of the call while the call
// stays up, as when the callee's network fails: no BYE, no audio, not even
// silence. The caller hears nothing until its media timeout or its own
// hang-up.
func CutMedia() Step { return Step{kind: stepCutMedia} }

// Marks set by the scripts below.
const (
	MarkGreetingEnd = "greeting_end" // the voicemail greeting was heard
	MarkBeepEnd     = "beep_end"     // the voicemail beep ended: the message should start now
	MarkPromptEnd   = "prompt_end"   // the IVR prompt was heard
	MarkDigits      = "digits"       // the IVR got the digits it waited for
)

// Talk answers and takes turns: before each line it waits for the caller
// to finish speaking.
func Talk(lines ...[]int16) Script {
	var steps []Step
	for _, l := range lines {
		steps = append(steps, WaitForAgentTurn(), Say(l))
	}
	return Script{Steps: steps}
}

// Refuse rings for ring, then refuses with status.
func Refuse(status int, ring time.Duration) Script { return Script{Ring: ring, Status: status} }

// Busy, Declined and Unavailable ring briefly and refuse as a handset
// does: 486 Busy Here, 603 Decline, 480 Temporarily Unavailable.
func Busy() Script        { return Refuse(486, 200*time.Millisecond) }
func Declined() Script    { return Refuse(603, time.Second) }
func Unavailable() Script { return Refuse(480, 200*time.Millisecond) }

// RingOut rings until the caller gives up (CANCEL, answered 487).
func RingOut() Script { return Script{Ring: RingForever} }

// HangUpMidSentence answers, waits for the caller to start speaking, and
// hangs up after hearing `after` of it.
func HangUpMidSentence(after time.Duration) Script {
	return Script{Steps: []Step{WaitForAgentSpeech(), Pause(after), HangUp()}}
}

// Voicemail answers with greeting, then a beep, then records whatever
// comes until the caller hangs up. Marks MarkGreetingEnd and MarkBeepEnd
// say when each was heard, to time the message against the beep.
func Voicemail(greeting []int16) Script {
	return Script{Steps: []Step{Say(greeting), Mark(MarkGreetingEnd), Say(Beep()), Mark(MarkBeepEnd)}}
}

// IVR answers with prompt ("press 2 for the front desk"), then waits for
// n digits (marking MarkPromptEnd and MarkDigits), then stays on the line.
func IVR(prompt []int16, n int) Script {
	return Script{Steps: []Step{Say(prompt), Mark(MarkPromptEnd), WaitForDigits(n), Mark(MarkDigits)}}
}

// Beep is a voicemail beep: 1 kHz for 400 ms at half scale.
func Beep() []int16 { return calleesim.Tone(1000, 400*time.Millisecond, SampleRate, 0.5) }

// run plays the steps on an answered call. Waiting steps look only at
// audio that arrived after the previous step, so each WaitForAgentTurn
// waits for a new turn. It returns ErrHungUp when the caller hung up
// first.
func (c *Call) runSteps(ctx context.Context, s Script) error {
	quiet := s.AgentQuiet
	if quiet == 0 {
		quiet = DefaultAgentQuiet
	}
	mark := time.Now()
	for i, st := range s.Steps {
		var err error
		switch st.kind {
		case stepSay:
			err = c.wait(ctx, c.mouth.say(st.pcm))
		case stepStartSaying:
			c.mouth.say(st.pcm)
		case stepStopSaying:
			c.mouth.stop(time.Now())
		case stepWaitTurn:
			_, err = c.heard.WaitQuiet(ctx, mark, quiet)
		case stepWaitSpeech:
			_, err = c.heard.WaitSpeech(ctx, mark)
		case stepWaitDigits:
			_, err = c.Wait(ctx, func(r Record) bool { return len(r.Digits) >= st.n })
		case stepPause:
			err = c.pause(ctx, st.d)
		case stepMark:
			c.update(func(r *Record) { r.Marks = append(r.Marks, Marked{Name: st.name, At: time.Now()}) })
			c.log.Info("sipphone.mark", zap.String("name", st.name))
		case stepHangUp:
			c.hangUp("script")
			return nil
		case stepCutMedia:
			c.mouth.cut()
			c.log.Info("sipphone.media_cut")
		}
		if err != nil {
			return fmt.Errorf("sipphone: step %d: %w", i, c.why(err))
		}
		mark = time.Now()
	}
	return nil
}

func (c *Call) wait(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Call) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
