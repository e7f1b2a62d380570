package telephony

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// frameSink stands in for the Opus track: it keeps every frame the player
// sends and wakes waiters on each one.
type frameSink struct {
	mu      sync.Mutex
	frames  [][]int16
	due     []time.Time
	changed chan struct{}
}

func newFrameSink() *frameSink { return &frameSink{changed: make(chan struct{})} }

func (s *frameSink) write(due time.Time, pcm []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, append([]int16(nil), pcm...))
	s.due = append(s.due, due)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// waitFor blocks until cond holds over the frames sent so far; the player
// sends a frame every 20 ms, so each wake-up is a new frame.
func (s *frameSink) waitFor(t *testing.T, what string, cond func(frames [][]int16) bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond(s.frames)
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (s *frameSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

// sound returns the samples sent so far with silent frames left out.
func (s *frameSink) sound() []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int16
	for _, f := range s.frames {
		if !silent(f) {
			out = append(out, f...)
		}
	}
	return out
}

// ramp is audio with no zero sample, so every frame of it is non-silent
// and its order is checkable.
func ramp(n int, from int16) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = from + int16(i%1000) + 1
	}
	return pcm
}

const rate = DefaultSampleRate
const frame = rate / 50 // samples per 20 ms

func TestPlayerHoldsAudioUntilOpenThenPlaysItInOrder(t *testing.T) {
	sink := newFrameSink()
	var mu sync.Mutex
	var events []PlaybackEvent
	p := newPlayer(PlayerOptions{OnPlayback: func(ev PlaybackEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}}, sink.write)
	defer p.Close()

	audio := ramp(5*frame, 0) // 100 ms
	// Odd chunk sizes: the player re-frames whatever it is given.
	for i := 0; i < len(audio); i += 7 {
		require.NoError(t, p.Write("greeting", audio[i:min(i+7, len(audio))]))
	}
	require.Equal(t, 100*time.Millisecond, p.Queued())

	sink.waitFor(t, "frames while closed", func(f [][]int16) bool { return len(f) >= 5 })
	require.Empty(t, sink.sound(), "nothing plays before anyone listens")
	played, ok := p.Played("greeting")
	require.True(t, ok)
	require.Zero(t, played)

	p.Open()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.WaitDrained(ctx))
	require.Equal(t, audio, sink.sound(), "every sample, in order, nothing else")
	played, _ = p.Played("greeting")
	require.Equal(t, 100*time.Millisecond, played)
	require.Zero(t, p.Queued())

	sink.waitFor(t, "the drained event", func([][]int16) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, PlaybackStarted, events[0].Kind)
	require.Equal(t, "greeting", events[0].Item)
	require.Equal(t, PlaybackDrained, events[1].Kind)
	require.Equal(t, "greeting", events[1].Item)
	require.Equal(t, 100*time.Millisecond, events[1].Played)
	require.False(t, events[1].At.Before(events[0].At))
}

func TestPlayerClearStopsTheVoiceAtOnce(t *testing.T) {
	sink := newFrameSink()
	p := newPlayer(PlayerOptions{}, sink.write)
	defer p.Close()
	p.Open()

	require.NoError(t, p.Write("answer", ramp(100*frame, 0))) // 2 s
	sink.waitFor(t, "some of the answer", func(f [][]int16) bool {
		n := 0
		for _, fr := range f {
			if !silent(fr) {
				n++
			}
		}
		return n >= 3
	})

	in := p.Clear()
	require.Equal(t, "answer", in.Item)
	require.Greater(t, in.Played, time.Duration(0))
	require.Equal(t, 2*time.Second, in.Played+in.Dropped, "played and dropped account for every sample")
	require.Zero(t, p.Queued())

	// A frame taken just before Clear may still be on its way to the
	// track; after it, only silence.
	after := sink.count()
	sink.waitFor(t, "ten more frames", func(f [][]int16) bool { return len(f) >= after+10 })
	sink.mu.Lock()
	for i, f := range sink.frames[after+1:] {
		require.True(t, silent(f), "frame %d after Clear is silent", i)
	}
	sink.mu.Unlock()

	sent := time.Duration(len(sink.sound())) * time.Second / rate
	require.Equal(t, in.Played, sent, "Played is exactly what was sent")
	played, _ := p.Played("answer")
	require.Equal(t, in.Played, played)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.NoError(t, p.WaitDrained(ctx), "a cleared queue counts as drained")
}

func TestPlayerTracksItemsSeparately(t *testing.T) {
	sink := newFrameSink()
	p := newPlayer(PlayerOptions{}, sink.write)
	defer p.Close()
	require.NoError(t, p.Write("a", ramp(3*frame, 0)))
	require.NoError(t, p.Write("b", ramp(2*frame, 5000)))
	p.Open()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.WaitDrained(ctx))

	a, _ := p.Played("a")
	b, _ := p.Played("b")
	require.Equal(t, 60*time.Millisecond, a)
	require.Equal(t, 40*time.Millisecond, b)
	_, ok := p.Played("never-written")
	require.False(t, ok)

	in := p.Clear()
	require.Equal(t, Cleared{Item: "b", Played: 40 * time.Millisecond}, in, "clearing after the end drops nothing")
}

func TestPlayerClearBeforeAnythingPlayed(t *testing.T) {
	p := newPlayer(PlayerOptions{}, newFrameSink().write)
	defer p.Close()
	require.NoError(t, p.Write("first", ramp(frame, 0)))
	in := p.Clear()
	require.Equal(t, Cleared{Item: "first", Played: 0, Dropped: 20 * time.Millisecond}, in)
}

func TestPlayerQueueIsBounded(t *testing.T) {
	p := newPlayer(PlayerOptions{MaxQueue: 100 * time.Millisecond}, newFrameSink().write)
	defer p.Close()
	require.NoError(t, p.Write("x", ramp(5*frame, 0)))
	require.ErrorIs(t, p.Write("x", ramp(1, 0)), ErrQueueFull)
	p.Clear()
	require.NoError(t, p.Write("x", ramp(5*frame, 0)), "room again after a clear")
}

func TestPlayerCloseStopsEverything(t *testing.T) {
	sink := newFrameSink()
	p := newPlayer(PlayerOptions{}, sink.write)
	require.NoError(t, p.Write("x", ramp(50*frame, 0)))
	p.Close()
	p.Close() // idempotent
	n := sink.count()
	require.ErrorIs(t, p.Write("x", ramp(frame, 0)), ErrPlayerClosed)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := p.WaitDrained(ctx)
	require.True(t, err == nil || err == ErrPlayerClosed, "WaitDrained returns instead of hanging: %v", err)
	require.Equal(t, n, sink.count(), "no frame after Close returned")
}

// Hold keeps queued audio back (silence goes out) until Release, which
// lets it play from the next frame: a voicemail message waits for the beep.
func TestPlayerHoldAndRelease(t *testing.T) {
	sink := newFrameSink()
	p := newPlayer(PlayerOptions{}, sink.write)
	defer p.Close()
	p.Open()
	p.Hold()
	audio := ramp(5*frame, 0)
	require.NoError(t, p.Write("message", audio))
	start := sink.count()
	sink.waitFor(t, "frames while held", func(f [][]int16) bool { return len(f) >= start+5 })
	require.Empty(t, sink.sound(), "nothing plays while held")
	require.Equal(t, 100*time.Millisecond, p.Queued())

	p.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.WaitDrained(ctx))
	require.Equal(t, audio, sink.sound(), "all of it, once released")
}

// Each frame is stamped with when it was due: 20 ms after the one before,
// even when a busy process sent it late, unless the pacer fell so far
// behind (maxLag) that it restarted its schedule.
func TestPlayerStampsFramesWithTheirSchedule(t *testing.T) {
	sink := newFrameSink()
	p := newPlayer(PlayerOptions{}, sink.write)
	defer p.Close()
	sink.waitFor(t, "50 frames", func(f [][]int16) bool { return len(f) >= 50 })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for i := 1; i < len(sink.due); i++ {
		d := sink.due[i].Sub(sink.due[i-1])
		require.True(t, d == FrameDuration || d > FrameDuration+maxLag, "frame %d due %v after the one before", i, d)
	}
}

// Counts says how many frame slots went by and how many of them the
// listener lost: a sink stalled for 300 ms (a starved process) leaves a gap
// of the 14 slots past the one being sent, and the schedule then restarts,
// so the frames that follow are on time. On a fake clock (synctest), so
// the stall is exact on any machine.
func TestPlayerCountsLateFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sent := 0
		p := newPlayer(PlayerOptions{}, func(time.Time, []int16) error {
			sent++
			if sent == 10 {
				time.Sleep(300 * time.Millisecond)
			}
			return nil
		})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		frames, late := p.Counts()
		p.Close()
		require.Equal(t, int64(14), late, "the slots that passed during the stall")
		require.InDelta(t, 2000/20, frames, 1, "every 20 ms slot of the 2 s, sent or lost")
	})
}

// The players of a process share one pacer: their frames go out in the
// same slots, each player's own (one player's frame never goes to
// another), a closed player's stop while the others go on, and the pacer's
// goroutine ends with its last player (synctest fails a test that leaves
// one behind).
func TestPlayersShareOnePacer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pc := newPacer()
		a, b := newFrameSink(), newFrameSink()
		pa, pb := makePlayer(PlayerOptions{}, a.write), makePlayer(PlayerOptions{}, b.write)
		pc.add(pa)
		pc.add(pb)
		pa.Open()
		pb.Open()
		require.NoError(t, pa.Write("a", ramp(5*frame, 0)))
		require.NoError(t, pb.Write("b", ramp(5*frame, 5000)))
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, ramp(5*frame, 0), a.sound())
		require.Equal(t, ramp(5*frame, 5000), b.sound())
		a.mu.Lock()
		b.mu.Lock()
		require.Len(t, a.due, 11, "a frame at 0 ms and every 20 ms after")
		require.Equal(t, a.due, b.due, "both players' frames go out in the same slots")
		b.mu.Unlock()
		a.mu.Unlock()

		pa.Close()
		sentA := a.count()
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, sentA, a.count(), "a closed player sends nothing more")
		require.Equal(t, 16, b.count(), "the other goes on")
		framesB, _ := pb.Counts()
		require.Equal(t, int64(16), framesB)

		pb.Close()
		synctest.Wait()
		pc.mu.Lock()
		defer pc.mu.Unlock()
		require.False(t, pc.running, "the pacer stopped with its last player")
	})
}
