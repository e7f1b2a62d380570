package heard

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"
)

// DefaultSpeechThreshold is the RMS level above which a frame counts as
// speech: coded silence (Opus or G.711) stays at a few units, speech and
// tones are in the thousands.
const DefaultSpeechThreshold = 300.0

// ClipLevel is the magnitude at which a heard sample counts as clipped: a
// saturated 16-bit signal lands there, and G.711 tops out at 32124 (µ-law)
// and 32256 (A-law).
const ClipLevel = 32000

// Frame is one chunk of audio heard (an RTP packet, a decoded Opus frame).
// At is when it arrived; Pos is where it sits in the stream, in samples
// from the first heard.
type Frame struct {
	At      time.Time
	Pos     int
	Samples int
	RMS     float64
	Peak    int // largest sample magnitude
}

// Gap is a stretch of the stream that never arrived: a dropout.
type Gap struct {
	At      time.Time // arrival of the frame after the gap
	Pos     int
	Samples int
}

// Recording is what a phone heard: the level of every frame with its
// arrival time and stream position, and up to a bound the audio itself,
// laid out on the stream's timeline so that lost frames are silence where
// they belong.
type Recording struct {
	rate      int
	threshold float64
	keep      int // samples of audio to keep

	mu      sync.Mutex // guards the fields below
	next    int        // stream position just past the furthest frame placed
	frames  []Frame
	gaps    []Gap
	late    int // frames behind the stream: reordered or duplicated
	audio   []int16
	changed chan struct{} // closed and replaced on every frame placed
}

// New returns an empty recording of a stream at rate samples per second;
// frames at or above threshold RMS are speech; the first keep of the
// stream's audio is kept.
func New(rate int, threshold float64, keep time.Duration) *Recording {
	return &Recording{rate: rate, threshold: threshold, keep: samplesIn(keep, rate), changed: make(chan struct{})}
}

// Append places pcm right after what was heard: for a stream without gaps.
func (r *Recording) Append(at time.Time, pcm []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.placeLocked(at, r.next, pcm)
}

// Add places pcm at stream position pos, from the sender's clock (an RTP
// timestamp). A frame behind the stream is counted late and dropped; one
// ahead of it leaves a gap.
func (r *Recording) Add(at time.Time, pos int, pcm []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pos < r.next {
		r.late++
		return
	}
	if pos > r.next {
		r.gaps = append(r.gaps, Gap{At: at, Pos: r.next, Samples: pos - r.next})
	}
	r.placeLocked(at, pos, pcm)
}

func (r *Recording) placeLocked(at time.Time, pos int, pcm []int16) {
	f := Frame{At: at, Pos: pos, Samples: len(pcm), RMS: RMS(pcm)}
	for _, s := range pcm {
		f.Peak = max(f.Peak, abs(int(s)))
	}
	r.frames = append(r.frames, f)
	r.next = pos + len(pcm)
	if pos < r.keep {
		end := min(r.next, r.keep)
		if len(r.audio) < end {
			r.audio = append(r.audio, make([]int16, end-len(r.audio))...)
		}
		copy(r.audio[pos:end], pcm)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// Next is the stream position just past the furthest frame placed: where a
// stream that changes its clock (a new RTP source) continues.
func (r *Recording) Next() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// Frames returns a copy of the frames placed so far, in arrival order.
func (r *Recording) Frames() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Frame(nil), r.frames...)
}

// Audio returns a copy of the audio kept (the start of the stream, up to
// the bound given to New), with silence where frames were lost.
func (r *Recording) Audio() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.audio...)
}

// SampleRate is the rate of the stream and of Audio.
func (r *Recording) SampleRate() int { return r.rate }

// Quality summarises the line as the phone heard it.
type Quality struct {
	Packets  int
	Duration time.Duration // stream time covered, dropouts included
	Gaps     []Gap         // dropouts
	Lost     time.Duration // total length of the dropouts
	Late     int           // frames that arrived behind the stream and were not placed
	// SpeechRMS is the level of the loud frames together; Peak the largest
	// sample magnitude; Clipped the samples at or above ClipLevel.
	SpeechRMS float64
	Peak      int
	Clipped   int
	// TransitSpread is how far arrival times stray from the stream's own
	// clock: the latest frame's lateness minus the earliest's. A steady
	// line has a few ms; a sender that stalls shows its stall here.
	TransitSpread time.Duration
}

// Quality measures what was heard so far. Clipped counts samples of the
// audio kept only.
func (r *Recording) Quality() Quality {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := Quality{Packets: len(r.frames), Duration: r.durationOf(r.next), Gaps: append([]Gap(nil), r.gaps...), Late: r.late}
	for _, g := range r.gaps {
		q.Lost += r.durationOf(g.Samples)
	}
	var energy float64
	var loud int
	minT, maxT := time.Duration(math.MaxInt64), time.Duration(math.MinInt64)
	for _, f := range r.frames {
		q.Peak = max(q.Peak, f.Peak)
		if f.RMS >= r.threshold {
			energy += f.RMS * f.RMS * float64(f.Samples)
			loud += f.Samples
		}
		// Lateness against the first frame: arrival minus stream time.
		transit := f.At.Sub(r.frames[0].At) - r.durationOf(f.Pos-r.frames[0].Pos)
		minT, maxT = min(minT, transit), max(maxT, transit)
	}
	if loud > 0 {
		q.SpeechRMS = math.Sqrt(energy / float64(loud))
	}
	if len(r.frames) > 0 {
		q.TransitSpread = maxT - minT
	}
	for _, s := range r.audio {
		if abs(int(s)) >= ClipLevel {
			q.Clipped++
		}
	}
	return q
}

// Span is a stretch of speech, an utterance: loud frames, with quiet gaps
// shorter than the hangover (in stream time) bridged.
type Span struct {
	Start, End time.Time // arrival of the first and last loud frame
	StartPos   int       // stream position of the first loud sample
	EndPos     int       // stream position just past the last loud frame
	Samples    int       // loud samples in the span
	PeakRMS    float64
	rate       int
}

// Duration is the span's length in stream time.
func (s Span) Duration() time.Duration { return durationOf(s.EndPos-s.StartPos, s.rate) }

// Spans splits what was heard into utterances: a quiet stretch longer than
// hangover ends one.
func (r *Recording) Spans(hangover time.Duration) []Span {
	bridge := samplesIn(hangover, r.rate)
	var out []Span
	for _, f := range r.Frames() {
		if f.RMS < r.threshold {
			continue
		}
		if n := len(out); n > 0 && f.Pos-out[n-1].EndPos <= bridge {
			s := &out[n-1]
			s.End, s.EndPos = f.At, f.Pos+f.Samples
			s.Samples += f.Samples
			s.PeakRMS = max(s.PeakRMS, f.RMS)
			continue
		}
		out = append(out, Span{Start: f.At, End: f.At, StartPos: f.Pos, EndPos: f.Pos + f.Samples,
			Samples: f.Samples, PeakRMS: f.RMS, rate: r.rate})
	}
	return out
}

// WaitSpeech waits for the first loud frame that arrived after since and
// returns its arrival time.
func (r *Recording) WaitSpeech(ctx context.Context, since time.Time) (time.Time, error) {
	return r.wait(ctx, func(frames []Frame) (time.Time, bool) {
		for _, f := range arrivedAfter(frames, since) {
			if f.RMS >= r.threshold {
				return f.At, true
			}
		}
		return time.Time{}, false
	})
}

// WaitQuiet waits until, after speech that arrived after since, the stream
// has carried at least quiet of silence; it returns when the last loud
// frame arrived. Quiet is counted in stream samples, not on a timer.
func (r *Recording) WaitQuiet(ctx context.Context, since time.Time, quiet time.Duration) (time.Time, error) {
	need := samplesIn(quiet, r.rate)
	return r.wait(ctx, func(frames []Frame) (time.Time, bool) {
		frames = arrivedAfter(frames, since)
		lastLoud := -1
		for i, f := range frames {
			if f.RMS >= r.threshold {
				lastLoud = i
			}
		}
		if lastLoud < 0 {
			return time.Time{}, false
		}
		loud, end := frames[lastLoud], frames[len(frames)-1]
		return loud.At, end.Pos+end.Samples-(loud.Pos+loud.Samples) >= need
	})
}

// WaitFrames waits until cond holds for the frames placed so far: checked
// now and on every new frame, under the recording's lock (cond must not
// call the recording).
func (r *Recording) WaitFrames(ctx context.Context, cond func([]Frame) bool) error {
	_, err := r.wait(ctx, func(frames []Frame) (time.Time, bool) { return time.Time{}, cond(frames) })
	return err
}

// arrivedAfter returns the frames that arrived after t (frames are in
// arrival order).
func arrivedAfter(frames []Frame, t time.Time) []Frame {
	return frames[sort.Search(len(frames), func(i int) bool { return frames[i].At.After(t) }):]
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

// RMS is the root mean square level of pcm, in sample units (0..32767).
func RMS(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	return math.Sqrt(sum / float64(len(pcm)))
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func samplesIn(d time.Duration, rate int) int {
	return int(int64(d) * int64(rate) / int64(time.Second))
}

func durationOf(samples, rate int) time.Duration {
	if rate == 0 {
		return 0
	}
	return time.Duration(int64(samples) * int64(time.Second) / int64(rate))
}

func (r *Recording) durationOf(samples int) time.Duration { return durationOf(samples, r.rate) }
