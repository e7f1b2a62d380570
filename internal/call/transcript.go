package call

import (
	"strings"
	"time"

	"github.com/docshield/voice-worker/internal/store"
)

// transcript assembles turns and hands each one over (emit) as soon as it
// is complete, so a crash keeps what was said up to then. Offsets count
// from the answer, the recording's time zero.
//
// A callee turn is complete when its transcription arrives; its offsets
// come from the model's voice activity events, which count in input audio
// from when the model's input began. An agent turn is complete when its
// text is final and its audio has finished playing, and it spans what the
// callee heard: from its first sample sent to its last, or to the cut.
// Turns are emitted in the order they complete; offsets give the order in
// which they were spoken. Confined to the loop.
type transcript struct {
	zero       time.Time
	silence    time.Duration    // included in speech_stopped's audio_end_ms
	inputStart func() time.Time // when the model's input audio began
	emit       func(store.Turn)

	callee map[string]*calleeTurn
	agent  []*agentTurn // in the order their audio arrived
}

type calleeTurn struct{ start, end time.Duration }

type agentTurn struct {
	item, response string
	text           strings.Builder
	final          string
	textDone       bool // final text known (transcript done, or the response ended)
	audioDone      bool // no more audio will come
	started, ended time.Time
	cut            bool
}

// Bounds on unfinished turns; a turn the model never finishes must not
// grow the call's memory.
const (
	maxOpenCalleeTurns = 16
	maxOpenAgentTurns  = 16
	interruptedMark    = " [interrupted]"
)

func newTranscript(zero time.Time, silence time.Duration, inputStart func() time.Time, emit func(store.Turn)) *transcript {
	return &transcript{zero: zero, silence: silence, inputStart: inputStart, emit: emit, callee: map[string]*calleeTurn{}}
}

func (t *transcript) inputOffset(ms int) time.Duration {
	start := t.inputStart()
	// The model's input starts where its first batch started: its send
	// time less the batch's length. A batch whose first packet came right
	// at the answer would start up to a packet before it, and no turn
	// starts before the call does.
	if start.IsZero() || start.Before(t.zero) {
		start = t.zero
	}
	return start.Sub(t.zero) + time.Duration(ms)*time.Millisecond
}

func (t *transcript) speechStarted(item string, audioStartMS int) {
	if len(t.callee) >= maxOpenCalleeTurns {
		return
	}
	off := t.inputOffset(audioStartMS)
	t.callee[item] = &calleeTurn{start: off, end: off}
}

func (t *transcript) speechStopped(item string, audioEndMS int) {
	if c := t.callee[item]; c != nil {
		c.end = max(c.start, t.inputOffset(audioEndMS)-t.silence)
	}
}

func (t *transcript) calleeText(item, text string) {
	c := t.callee[item]
	delete(t.callee, item)
	if c == nil || strings.TrimSpace(text) == "" {
		return // noise the model heard as speech, or a turn we never saw start
	}
	t.emit(store.Turn{Role: "callee", Text: strings.TrimSpace(text), StartMS: c.start.Milliseconds(), EndMS: c.end.Milliseconds()})
}

func (t *transcript) find(item string) *agentTurn {
	for _, a := range t.agent {
		if a.item == item {
			return a
		}
	}
	return nil
}

// agentAudio notes audio written for item: it is not over yet.
func (t *transcript) agentAudio(item, response string) {
	a := t.find(item)
	if a == nil {
		if len(t.agent) >= maxOpenAgentTurns {
			oldest := t.agent[0]
			t.agent = t.agent[1:]
			if !oldest.started.IsZero() {
				oldest.cut = true
				t.finish(oldest, time.Now())
			}
		}
		a = &agentTurn{item: item, response: response}
		t.agent = append(t.agent, a)
	}
	a.ended = time.Time{}
}

func (t *transcript) agentDelta(item, delta string) {
	if a := t.find(item); a != nil && !a.textDone {
		a.text.WriteString(delta)
	}
}

func (t *transcript) agentText(item, text string) {
	if a := t.find(item); a != nil {
		a.final, a.textDone = text, true
		t.tryEmit()
	}
}

func (t *transcript) agentAudioDone(item string) {
	if a := t.find(item); a != nil {
		a.audioDone = true
		t.tryEmit()
	}
}

// responseDone: whatever its items said so far is all they will say.
func (t *transcript) responseDone(response string) {
	for _, a := range t.agent {
		if a.response == response {
			a.textDone, a.audioDone = true, true
		}
	}
	t.tryEmit()
}

func (t *transcript) playStarted(item string, at time.Time) {
	for _, a := range t.agent {
		if a.item == item {
			if a.started.IsZero() {
				a.started = at
			}
			break
		}
		if !a.started.IsZero() && a.ended.IsZero() {
			a.ended = at // items play in order: the one before is over
		}
	}
	t.tryEmit()
}

func (t *transcript) drained(item string, at time.Time) {
	if a := t.find(item); a != nil && !a.started.IsZero() {
		a.ended = at
		t.tryEmit()
	}
}

// cut: the callee stopped hearing item at at; items queued after it were
// never heard.
func (t *transcript) cut(item string, at time.Time) {
	keep := t.agent[:0]
	hit := false
	for _, a := range t.agent {
		switch {
		case a.item == item:
			hit = true
			a.cut, a.audioDone = true, true
			if a.ended.IsZero() {
				a.ended = at
			}
			keep = append(keep, a)
		case hit && a.started.IsZero():
			// dropped unheard
		default:
			keep = append(keep, a)
		}
	}
	clear(t.agent[len(keep):])
	t.agent = keep
	t.tryEmit()
}

func (t *transcript) tryEmit() {
	keep := t.agent[:0]
	for _, a := range t.agent {
		if a.textDone && a.audioDone && !a.started.IsZero() && !a.ended.IsZero() {
			t.finish(a, a.ended)
			continue
		}
		keep = append(keep, a)
	}
	clear(t.agent[len(keep):])
	t.agent = keep
}

// flush ends the call's transcript at now: turns still playing were cut
// off, turns never heard are left out, and callee turns without text are
// left out.
func (t *transcript) flush(now time.Time) {
	for _, a := range t.agent {
		if a.started.IsZero() {
			continue
		}
		if a.ended.IsZero() || !a.audioDone {
			a.cut = true
		}
		end := a.ended
		if end.IsZero() {
			end = now
		}
		t.finish(a, end)
	}
	t.agent = nil
	clear(t.callee)
}

// finish emits a; taking it out of the open turns is the caller's job.
func (t *transcript) finish(a *agentTurn, end time.Time) {
	text := a.final
	if text == "" {
		text = a.text.String()
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return
	}
	if a.cut {
		text += interruptedMark
	}
	start := a.started
	if start.IsZero() {
		start = end
	}
	t.emit(store.Turn{Role: "agent", Text: text, StartMS: start.Sub(t.zero).Milliseconds(), EndMS: end.Sub(t.zero).Milliseconds()})
}
