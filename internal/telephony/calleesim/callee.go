package calleesim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/telephony/heard"
	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultSpeechThreshold = heard.DefaultSpeechThreshold // Opus-coded silence stays far below, speech and tones far above
	DefaultAgentQuiet      = 700 * time.Millisecond
)

// Options configure a simulated callee.
type Options struct {
	Identity string // "": telephony.DefaultCalleeIdentity
	Agent    string // whom the callee listens to; "": telephony.AgentIdentity
	// SpeechThreshold is the RMS level above which heard audio counts as
	// the agent speaking.
	SpeechThreshold float64
	// KeepAudio is how much of the agent's raw audio to keep for inspection.
	KeepAudio time.Duration
	Logger    *zap.Logger
}

// Utterance is one thing the callee said, stamped when its first and last
// audio was sent into the room.
type Utterance struct {
	Start, End time.Time
	Cleared    bool // cut short by StopSaying or hang-up
}

// Callee is a person answering the phone, as a LiveKit participant: it
// speaks PCM into the room and records what it hears from the agent.
type Callee struct {
	p     *telephony.Participant
	heard *Recording
	log   *zap.Logger

	mu   sync.Mutex // guards said and seq
	said []Utterance
	seq  int
}

// Answer joins room as the callee.
func Answer(ctx context.Context, cfg telephony.Config, room string, opts Options) (*Callee, error) {
	rate := cfg.SampleRate
	if rate == 0 {
		rate = telephony.DefaultSampleRate
	}
	if opts.SpeechThreshold == 0 {
		opts.SpeechThreshold = DefaultSpeechThreshold
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	c := &Callee{
		heard: heard.New(rate, opts.SpeechThreshold, opts.KeepAudio),
		log:   opts.Logger,
	}
	p, err := telephony.Join(ctx, cfg, room, telephony.ParticipantOptions{
		Identity:    orDefault(opts.Identity, telephony.DefaultCalleeIdentity),
		Name:        "simulated callee",
		Peer:        orDefault(opts.Agent, telephony.AgentIdentity),
		OnPeerAudio: func(pcm []int16) { c.heard.Append(time.Now(), pcm) },
		Player:      telephony.PlayerOptions{SampleRate: rate, OnPlayback: c.onPlayback},
		Logger:      opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	c.p = p
	return c, nil
}

func (c *Callee) onPlayback(ev telephony.PlaybackEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Kind {
	case telephony.PlaybackStarted:
		if n := len(c.said); n > 0 && c.said[n-1].End.IsZero() {
			c.said[n-1].End = ev.At // the next utterance followed without a pause
		}
		c.said = append(c.said, Utterance{Start: ev.At})
	case telephony.PlaybackDrained:
		if n := len(c.said); n > 0 && c.said[n-1].End.IsZero() {
			c.said[n-1].End = ev.At
		}
	}
}

// Say speaks pcm and returns once all of it was sent (or it was cleared,
// the callee left, or ctx ended).
func (c *Callee) Say(ctx context.Context, pcm []int16) error {
	if err := c.StartSaying(pcm); err != nil {
		return err
	}
	ctx, cancel := c.untilGone(ctx)
	defer cancel()
	return c.gone(c.p.Player().WaitDrained(ctx))
}

// StartSaying starts speaking pcm without waiting: a barge-in.
func (c *Callee) StartSaying(pcm []int16) error {
	c.mu.Lock()
	c.seq++
	item := "callee-" + strconv.Itoa(c.seq)
	c.mu.Unlock()
	if err := c.p.Player().Write(item, pcm); err != nil {
		return fmt.Errorf("calleesim: say: %w", err)
	}
	return nil
}

// StopSaying cuts the callee off mid-sentence.
func (c *Callee) StopSaying() {
	c.p.Player().Clear()
	c.mu.Lock()
	if n := len(c.said); n > 0 && c.said[n-1].End.IsZero() {
		c.said[n-1].End, c.said[n-1].Cleared = time.Now(), true
	}
	c.mu.Unlock()
}

// Said returns what the callee said so far.
func (c *Callee) Said() []Utterance {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Utterance(nil), c.said...)
}

// Heard is what the callee heard from the agent.
func (c *Callee) Heard() *Recording { return c.heard }

// WaitForAgentSpeech waits for the agent's voice arriving after since.
func (c *Callee) WaitForAgentSpeech(ctx context.Context, since time.Time) (time.Time, error) {
	return c.waitHeard(ctx, func(ctx context.Context) (time.Time, error) { return c.heard.WaitSpeech(ctx, since) })
}

// WaitForAgentTurn waits until the agent spoke (after since) and then was
// quiet for quiet; it returns when the agent's speech ended.
func (c *Callee) WaitForAgentTurn(ctx context.Context, since time.Time, quiet time.Duration) (time.Time, error) {
	return c.waitHeard(ctx, func(ctx context.Context) (time.Time, error) { return c.heard.WaitQuiet(ctx, since, quiet) })
}

// waitHeard ends the wait early when the callee is out of the room: no more
// audio will arrive.
func (c *Callee) waitHeard(ctx context.Context, wait func(context.Context) (time.Time, error)) (time.Time, error) {
	ctx, cancel := c.untilGone(ctx)
	defer cancel()
	at, err := wait(ctx)
	return at, c.gone(err)
}

// untilGone returns a context that also ends when the callee leaves the
// room. The watcher goroutine exits when the returned cancel is called.
func (c *Callee) untilGone(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-c.p.Disconnected():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// gone reports an error caused by leaving the room as ErrHungUp.
func (c *Callee) gone(err error) error {
	if err != nil && isClosed(c.p.Disconnected()) {
		return ErrHungUp
	}
	return err
}

// ErrHungUp means the callee is no longer in the room.
var ErrHungUp = errors.New("calleesim: the callee is not on the line")

// HangUp leaves the room, as a person putting the phone down.
func (c *Callee) HangUp() { c.p.Close() }

// Gone is closed once the callee is out of the room, by hanging up or by
// being removed (the agent hung up).
func (c *Callee) Gone() <-chan struct{} { return c.p.Disconnected() }

// Identity is the callee's participant identity.
func (c *Callee) Identity() string { return c.p.Identity() }

// SID is the callee's participant session id.
func (c *Callee) SID() string { return c.p.SID() }

// Listening is closed once the agent subscribed to the callee's voice.
func (c *Callee) Listening() <-chan struct{} { return c.p.Listening() }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
