package sipphone

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/docshield/voice-worker/internal/telephony/calleesim"
	"github.com/pion/rtp"
)

// Defaults of Config.
const (
	DefaultSpeechThreshold = 300.0 // RMS; G.711 silence decodes to a few units, speech to thousands
	DefaultAgentQuiet      = 700 * time.Millisecond
	// ClipLevel is the magnitude at which a heard sample counts as clipped:
	// G.711 tops out at 32124 (µ-law) and 32256 (A-law), which is where a
	// saturated 16-bit signal lands.
	ClipLevel = 32000
)

// Frame is one RTP packet of audio heard. At is when it arrived; Pos is
// where it sits in the caller's stream, in samples, from its RTP timestamp
// (the first packet heard is 0). Pos is the sender's clock, immune to the
// bursty arrival a busy machine causes; At is for latency.
type Frame struct {
	At      time.Time
	Pos     int
	Samples int
	Seq     uint16
	RMS     float64
	Peak    int // largest magnitude
}

// Gap is a stretch of the caller's stream that never arrived: a dropout.
type Gap struct {
	At      time.Time // arrival of the packet after the gap
	Pos     int
	Samples int
}

// Recording is what the phone heard from the caller (the agent, through
// livekit-sip): the level of every packet with its arrival time and RTP
// position, and up to a limit the decoded audio itself, laid out on the
// caller's timeline so that lost packets are silence where they belong.
type Recording struct {
	threshold float64
	keep      int // samples of audio to keep

	mu      sync.Mutex // guards the fields below
	started bool
	ssrc    uint32
	base    uint32 // RTP timestamp of stream position 0
	next    int    // stream position just past the furthest packet placed
	frames  []Frame
	gaps    []Gap
	late    int // packets behind the stream: reordered or duplicated
	audio   []int16
	changed chan struct{} // closed and replaced on every packet
}

func newRecording(threshold float64, keep time.Duration) *Recording {
	return &Recording{threshold: threshold, keep: samplesIn(keep), changed: make(chan struct{})}
}

// add places one decoded packet. A new SSRC continues the timeline where
// the old one stopped, as a receiver's playout would.
func (r *Recording) add(at time.Time, h rtp.Header, pcm []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started || h.SSRC != r.ssrc {
		r.base = h.Timestamp - uint32(r.next)
		r.ssrc, r.started = h.SSRC, true
	}
	pos := int(int32(h.Timestamp - r.base))
	if pos < r.next {
		r.late++
		return
	}
	if pos > r.next {
		r.gaps = append(r.gaps, Gap{At: at, Pos: r.next, Samples: pos - r.next})
	}
	f := Frame{At: at, Pos: pos, Samples: len(pcm), Seq: h.SequenceNumber, RMS: calleesim.RMS(pcm)}
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

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// Frames returns a copy of the packets heard so far, in arrival order.
func (r *Recording) Frames() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Frame(nil), r.frames...)
}

// Audio returns a copy of the audio kept (the first KeepAudio of the
// stream), at SampleRate, with silence where packets were lost.
func (r *Recording) Audio() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.audio...)
}

// Quality summarises the line as the phone heard it.
type Quality struct {
	Packets  int
	Duration time.Duration // stream time covered, dropouts included
	Gaps     []Gap         // dropouts
	Lost     time.Duration // total length of the dropouts
	Late     int           // packets that arrived behind the stream and were not placed
	// SpeechRMS is the level of the loud packets together; Peak the largest
	// sample magnitude; Clipped the samples at or above ClipLevel.
	SpeechRMS float64
	Peak      int
	Clipped   int
	// TransitSpread is how far arrival times stray from the stream's own
	// clock: the latest packet's lateness minus the earliest's. A steady
	// line has a few ms; a sender that stalls shows its stall here.
	TransitSpread time.Duration
}

// Quality measures what was heard so far. Clipped counts samples of the
// audio kept only.
func (r *Recording) Quality() Quality {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := Quality{Packets: len(r.frames), Duration: durationOf(r.next), Gaps: append([]Gap(nil), r.gaps...), Late: r.late}
	for _, g := range r.gaps {
		q.Lost += durationOf(g.Samples)
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
		// Lateness against the first packet: arrival minus stream time.
		transit := f.At.Sub(r.frames[0].At) - durationOf(f.Pos-r.frames[0].Pos)
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

// Span is a stretch of speech: loud packets, with quiet gaps shorter than
// the hangover (in stream time) bridged.
type Span struct {
	Start, End time.Time // arrival of the first and last loud packet
	StartPos   int       // stream position of the first loud sample
	EndPos     int       // stream position just past the last loud packet
	PeakRMS    float64
}

// Duration is the span's length in stream time.
func (s Span) Duration() time.Duration { return durationOf(s.EndPos - s.StartPos) }

// Spans finds the caller's speech in what was heard.
func (r *Recording) Spans(hangover time.Duration) []Span {
	bridge := samplesIn(hangover)
	var out []Span
	for _, f := range r.Frames() {
		if f.RMS < r.threshold {
			continue
		}
		if n := len(out); n > 0 && f.Pos-out[n-1].EndPos <= bridge {
			last := &out[n-1]
			last.End, last.EndPos, last.PeakRMS = f.At, f.Pos+f.Samples, max(last.PeakRMS, f.RMS)
			continue
		}
		out = append(out, Span{Start: f.At, End: f.At, StartPos: f.Pos, EndPos: f.Pos + f.Samples, PeakRMS: f.RMS})
	}
	return out
}

// WaitSpeech waits for the first loud packet that arrived after since and
// returns its arrival time.
func (r *Recording) WaitSpeech(ctx context.Context, since time.Time) (time.Time, error) {
	return r.waitFor(ctx, func(frames []Frame) (time.Time, bool) {
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
// packet arrived. Quiet is counted in stream samples, not on a timer.
func (r *Recording) WaitQuiet(ctx context.Context, since time.Time, quiet time.Duration) (time.Time, error) {
	need := samplesIn(quiet)
	return r.waitFor(ctx, func(frames []Frame) (time.Time, bool) {
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

// arrivedAfter returns the frames that arrived after t (frames are in
// arrival order).
func arrivedAfter(frames []Frame, t time.Time) []Frame {
	return frames[sort.Search(len(frames), func(i int) bool { return frames[i].At.After(t) }):]
}

// waitFor re-checks cond on every new packet until it holds or ctx ends.
func (r *Recording) waitFor(ctx context.Context, cond func([]Frame) (time.Time, bool)) (time.Time, error) {
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

func samplesIn(d time.Duration) int { return int(int64(d) * SampleRate / int64(time.Second)) }

func durationOf(samples int) time.Duration {
	return time.Duration(int64(samples) * int64(time.Second) / SampleRate)
}
