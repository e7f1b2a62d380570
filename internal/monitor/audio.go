package monitor

import (
	"context"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/worker"
	"github.com/hibiken/asynq"
)

// AudioCounts are a call's audio deadlines, met and missed, as running
// totals: the agent's frames paced out to the callee, and the callee's
// chunks sent on to the model.
type AudioCounts struct {
	Frames       int64 // agent audio frames due (one per 20 ms)
	LateFrames   int64 // of them, sent so late the listener hears a gap
	InputChunks  int64 // callee audio chunks for the model
	InputDropped int64 // of them, dropped because the model's socket fell behind
}

func (a AudioCounts) add(b AudioCounts) AudioCounts {
	return AudioCounts{a.Frames + b.Frames, a.LateFrames + b.LateFrames, a.InputChunks + b.InputChunks, a.InputDropped + b.InputDropped}
}

func (a AudioCounts) sub(b AudioCounts) AudioCounts {
	return AudioCounts{a.Frames - b.Frames, a.LateFrames - b.LateFrames, a.InputChunks - b.InputChunks, a.InputDropped - b.InputDropped}
}

// AudioSource reads a live call's counts (realtime.Session.Stats: the
// input chunks and those dropped; a player's frames and late frames). It
// must be cheap and safe to call from another goroutine.
type AudioSource func() AudioCounts

// AudioMeter sums the audio counts of the calls running in this process:
// each call registers itself while it runs (Track), with a source of its
// counts or none. An ended call's last counts are kept, so the totals
// never go backwards. Safe for concurrent use.
type AudioMeter struct {
	mu      sync.Mutex // guards the fields below
	next    int
	live    map[int]AudioSource // nil sources: a call that reports no counts
	retired AudioCounts
}

// NewAudioMeter starts with no call.
func NewAudioMeter() *AudioMeter { return &AudioMeter{live: map[int]AudioSource{}} }

// Track registers a live call until the returned func is called (once, when
// the call ends). src may be nil.
func (m *AudioMeter) Track(src AudioSource) (done func()) {
	m.mu.Lock()
	id := m.next
	m.next++
	m.live[id] = src
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if src != nil {
				m.retired = m.retired.add(src())
			}
			delete(m.live, id)
		})
	}
}

// Live is how many calls run now.
func (m *AudioMeter) Live() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}

// Counts are the totals of every call so far, ended and live.
func (m *AudioMeter) Counts() AudioCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.retired
	for _, src := range m.live {
		if src != nil {
			c = c.add(src())
		}
	}
	return c
}

// Middleware counts the running tasks of the given types as live calls
// (with no counts of their own), for a worker whose call path does not
// Track its calls itself.
func (m *AudioMeter) Middleware(taskTypes ...string) asynq.MiddlewareFunc {
	return worker.ForTypes(func(ctx context.Context, t *asynq.Task, next asynq.Handler) error {
		defer m.Track(nil)()
		return next.ProcessTask(ctx, t)
	}, taskTypes...)
}

// Pacing is the audio frame: the agent's voice goes out one frame per
// 20 ms (telephony.FrameDuration).
const Pacing = 20 * time.Millisecond

// PacingLateAfter is how late a frame may be sent before the listener
// hears a gap: the agent's player then gives up catching up and restarts
// its schedule (telephony's maxLag).
const PacingLateAfter = 100 * time.Millisecond

// pacingProbe keeps the agent's pace on a goroutine of its own: a frame due
// every 20 ms on an absolute schedule, exactly as the call's player sends
// them, counting those it could not send on time. Every live call's pacer
// shares this process's CPU and scheduler with it, so when the probe's
// frames are late, theirs are: it reads audio deadlines without a change
// to the media path.
type pacingProbe struct {
	mu            sync.Mutex // guards counts, written by the probe, read by the admission duty
	frames, lates int64

	stop chan struct{}
	done chan struct{}
}

func startPacingProbe() *pacingProbe {
	p := &pacingProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *pacingProbe) run() {
	defer close(p.done)
	t := time.NewTimer(Pacing)
	defer t.Stop()
	next := time.Now().Add(Pacing)
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		late := now.Sub(next) > PacingLateAfter
		p.mu.Lock()
		p.frames++
		if late {
			p.lates++
		}
		p.mu.Unlock()
		next = next.Add(Pacing)
		if now.Sub(next) > PacingLateAfter {
			next = now // as the player does: restart the schedule rather than burst
		}
		t.Reset(next.Sub(now))
	}
}

func (p *pacingProbe) counts() AudioCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return AudioCounts{Frames: p.frames, LateFrames: p.lates}
}

func (p *pacingProbe) shutdown() {
	close(p.stop)
	<-p.done
}
