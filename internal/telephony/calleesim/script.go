package calleesim

import (
	"context"
	"fmt"
	"time"

	"github.com/docshield/voice-worker/internal/telephony"
)

// Script is how a simulated callee behaves on one call.
type Script struct {
	// Outcome of the dial: "" or telephony.Answered picks up; Busy,
	// Rejected and Failed refuse after RingFor; NoAnswer rings out.
	Outcome telephony.Outcome
	// RingFor is how long the phone rings first. Ringing longer than the
	// dial's ring timeout is a no answer, whatever Outcome says.
	RingFor time.Duration
	// AgentQuiet is the silence that ends an agent's turn for
	// WaitForAgentTurn steps; 0: DefaultAgentQuiet.
	AgentQuiet time.Duration
	// Steps run in order once the call is answered.
	Steps []Step
}

type stepKind int

const (
	stepSay stepKind = iota + 1
	stepStartSaying
	stepWaitTurn
	stepWaitSpeech
	stepPause
	stepHangUp
)

// Step is one action of a script; build steps with the functions below.
type Step struct {
	kind stepKind
	pcm  []int16
	d    time.Duration
}

// Say speaks pcm and waits until it was all said.
func Say(pcm []int16) Step { return Step{kind: stepSay, pcm: pcm} }

// StartSaying starts speaking pcm and goes on at once: with
// WaitForAgentSpeech before it, a barge-in.
func StartSaying(pcm []int16) Step { return Step{kind: stepStartSaying, pcm: pcm} }

// WaitForAgentTurn waits until the agent has spoken and then been quiet.
func WaitForAgentTurn() Step { return Step{kind: stepWaitTurn} }

// WaitForAgentSpeech waits until the agent starts speaking.
func WaitForAgentSpeech() Step { return Step{kind: stepWaitSpeech} }

// Pause waits d.
func Pause(d time.Duration) Step { return Step{kind: stepPause, d: d} }

// HangUp leaves the call.
func HangUp() Step { return Step{kind: stepHangUp} }

// Run plays the steps. Waiting steps look only at audio that arrived after
// the previous step, so each WaitForAgentTurn waits for a new turn. It
// returns ErrHungUp if the callee was removed before the script ended.
func (c *Callee) Run(ctx context.Context, script Script) error {
	quiet := script.AgentQuiet
	if quiet == 0 {
		quiet = DefaultAgentQuiet
	}
	mark := time.Now()
	for i, s := range script.Steps {
		var err error
		switch s.kind {
		case stepSay:
			err = c.Say(ctx, s.pcm)
		case stepStartSaying:
			err = c.StartSaying(s.pcm)
		case stepWaitTurn:
			_, err = c.WaitForAgentTurn(ctx, mark, quiet)
		case stepWaitSpeech:
			_, err = c.WaitForAgentSpeech(ctx, mark)
		case stepPause:
			err = c.pause(ctx, s.d)
		case stepHangUp:
			c.HangUp()
		default:
			err = fmt.Errorf("calleesim: step %d has no action (build steps with Say, Pause, ...)", i)
		}
		if err != nil {
			return fmt.Errorf("calleesim: step %d: %w", i, err)
		}
		mark = time.Now()
	}
	return nil
}

func (c *Callee) pause(ctx context.Context, d time.Duration) error {
	ctx, cancel := c.untilGone(ctx)
	defer cancel()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return c.gone(ctx.Err())
	}
}
