package calleesim

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Frame is one chunk of audio heard. At is when it arrived; Pos is where it
// sits in the stream (samples received before it). The sender talks
// continuously (silence between turns), so Pos is the sender's clock, immune
// to the bursty arrival a busy machine or network causes; At is for
// latency.
type Frame struct {
	At      time.Time
	Pos     int
	Samples int
	RMS     float64
}

// Recording is what the callee heard from the agent: the level of every
// chunk with its arrival time and, up to a limit, the audio itself. Levels
// are kept for the whole call (a few bytes per 20 ms); raw audio only as
// far as Options.KeepAudio allows, so a long simulated call stays small.
type Recording struct {
	rate      int
	threshold float64
	keep      int // samples of raw audio to keep

	mu      sync.Mutex // guards the fields below
	frames  []Frame
	pos     int // samples received
	audio   []int16
	changed chan struct{} // closed and replaced on every frame
}

func newRecording(rate int, threshold float64, keep time.Duration) *Recording {
	return &Recording{
		rate:      rate,
		threshold: threshold,
		keep:      samplesIn(keep, rate),
		changed:   make(chan struct{}),
	}
}

func (r *Recording) add(at time.Time, pcm []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, Frame{At: at, Pos: r.pos, Samples: len(pcm), RMS: RMS(pcm)})
	r.pos += len(pcm)
	if room := r.keep - len(r.audio); room > 0 {
		r.audio = append(r.audio, pcm[:min(room, len(pcm))]...)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// Frames returns a copy of the frames heard so far.
func (r *Recording) Frames() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Frame(nil), r.frames...)
}

// Audio returns a copy of the raw audio kept (the first KeepAudio of it).
func (r *Recording) Audio() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.audio...)
}

// SampleRate is the rate of Audio.
func (r *Recording) SampleRate() int { return r.rate }

// Span is a stretch of speech: loud frames, with quiet gaps shorter than
// the hangover (in stream time) bridged.
type Span struct {
	Start, End time.Time // arrival of the first and last loud frame
	StartPos   int       // stream position of the first loud sample
	EndPos     int       // stream position just past the last loud frame
	Samples    int       // loud samples in the span
	PeakRMS    float64
}

// Duration is the span's length in stream time.
func (s Span) Duration(rate int) time.Duration {
	return time.Duration(int64(s.EndPos-s.StartPos) * int64(time.Second) / int64(rate))
}

// Spans finds the agent's speech in what was heard.
func (r *Recording) Spans(hangover time.Duration) []Span {
	return spans(r.Frames(), r.threshold, samplesIn(hangover, r.rate))
}

func spans(frames []Frame, threshold float64, hangover int) []Span {
	var out []Span
	for _, f := range frames {
		if f.RMS < threshold {
			continue
		}
		if n := len(out); n > 0 && f.Pos-out[n-1].EndPos <= hangover {
			s := &out[n-1]
			s.End, s.EndPos = f.At, f.Pos+f.Samples
			s.Samples += f.Samples
			s.PeakRMS = max(s.PeakRMS, f.RMS)
			continue
		}
		out = append(out, Span{Start: f.At, End: f.At, StartPos: f.Pos, EndPos: f.Pos + f.Samples, Samples: f.Samples, PeakRMS: f.RMS})
	}
	return out
}

func samplesIn(d time.Duration, rate int) int {
	return int(int64(d) * int64(rate) / int64(time.Second))
}

// WaitSpeech waits for the first loud frame that arrived after since.
func (r *Recording) WaitSpeech(ctx context.Context, since time.Time) (time.Time, error) {
	return r.wait(ctx, func(frames []Frame) (time.Time, bool) {
		for _, f := range after(frames, since) {
			if f.RMS >= r.threshold {
				return f.At, true
			}
		}
		return time.Time{}, false
	})
}

// WaitQuiet waits until, after some speech that arrived after since, the
// stream has carried at least quiet of silence, and returns when the last
// loud frame arrived. Quiet is counted in received samples, not on a timer.
func (r *Recording) WaitQuiet(ctx context.Context, since time.Time, quiet time.Duration) (time.Time, error) {
	need := samplesIn(quiet, r.rate)
	return r.wait(ctx, func(frames []Frame) (time.Time, bool) {
		var last *Frame
		frames = after(frames, since)
		for i := range frames {
			if frames[i].RMS >= r.threshold {
				last = &frames[i]
			}
		}
		if last == nil {
			return time.Time{}, false
		}
		end := frames[len(frames)-1]
		return last.At, end.Pos+end.Samples-(last.Pos+last.Samples) >= need
	})
}

// after returns the frames that arrived after t (frames are in arrival order).
func after(frames []Frame, t time.Time) []Frame {
	i := sort.Search(len(frames), func(i int) bool { return frames[i].At.After(t) })
	return frames[i:]
}

// wait re-checks cond on every new frame until it holds or ctx ends.
func (r *Recording) wait(ctx context.Context, cond func([]Frame) (time.Time, bool)) (time.Time, error) {
	for {
		r.mu.Lock()
		at, ok := cond(r.frames)
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return at, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}
