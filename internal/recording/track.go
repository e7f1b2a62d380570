package recording

import (
	"math"
	"time"
)

// Placement. A chunk's stamp says when it was heard, but stamps carry
// arrival jitter: a receive path that stalls delivers the owed frames in a
// burst, all stamped alike, and a lost frame leaves a hole the stamps do
// not explain. So a side's chunks are stitched end to end (no clicks or
// holes from jitter), and the stamps steer: the smallest gap between stamp
// and stitched position over a short window is the side's real offset,
// since jitter only ever delays a stamp. When that offset is off by more
// than syncTolerance, the next chunk moves by it.
const (
	// maxJoin: a chunk stamped more than this after the side's previous
	// chunk ended starts a new stretch of sound (the agent's next reply, a
	// callee after DTX silence) and is placed at its stamp at once.
	maxJoin = 100 * time.Millisecond
	// maxLead: a chunk stamped this long before its stitched position is
	// placed at its stamp at once (a clock step, not jitter).
	maxLead = 250 * time.Millisecond
	// syncWindow is how much of a side's audio the offset is measured over;
	// it is longer than any stall maxJoin lets through, so a burst's delayed
	// stamps never make up a whole window.
	syncWindow = 300 * time.Millisecond
	// syncTolerance is the drift left alone, well inside the 60 ms the
	// recording promises.
	syncTolerance = 20 * time.Millisecond
)

// placement holds the tolerances above in samples.
type placement struct {
	join, lead, window, tolerance int64
}

func newPlacement(rate int) placement {
	return placement{
		join:      samples(maxJoin, rate),
		lead:      samples(maxLead, rate),
		window:    samples(syncWindow, rate),
		tolerance: samples(syncTolerance, rate),
	}
}

// track is one side's audio waiting to be encoded. It belongs to the
// mixer goroutine.
type track struct {
	p placement
	// buf holds the samples from the mixer's first unencoded position on;
	// silence where nothing was placed.
	buf []int16
	// cursor is the position just after the side's last chunk; -1 before
	// the first.
	cursor int64
	// minOffset is the smallest stamp-minus-cursor seen over the current
	// window, which holds winLen samples.
	minOffset, winLen int64
	// late counts samples that arrived after their time was encoded.
	late int64
}

func newTrack(p placement) *track { return &track{p: p, cursor: -1, minOffset: math.MaxInt64} }

// place writes pcm, stamped at position at (samples from the call start),
// into the buffer whose first sample is at position base, and returns the
// position after the placed audio.
func (t *track) place(at int64, pcm []int16, base int64) int64 {
	pos := at
	if off := at - t.cursor; t.cursor >= 0 && off <= t.p.join && -off <= t.p.lead {
		pos = t.cursor
		t.minOffset = min(t.minOffset, off)
		t.winLen += int64(len(pcm))
		if t.winLen >= t.p.window {
			if t.minOffset > t.p.tolerance || -t.minOffset > t.p.tolerance {
				pos += t.minOffset
			}
			t.resetWindow()
		}
	} else {
		t.resetWindow()
	}
	end := pos + int64(len(pcm))
	t.cursor = end
	if pos < base {
		cut := min(base-pos, int64(len(pcm)))
		t.late += cut
		pcm, pos = pcm[cut:], base
		if len(pcm) == 0 {
			return end
		}
	}
	from, to := int(pos-base), int(end-base)
	if to > len(t.buf) {
		t.buf = append(t.buf, make([]int16, to-len(t.buf))...)
	}
	copy(t.buf[from:to], pcm)
	return end
}

func (t *track) resetWindow() { t.minOffset, t.winLen = math.MaxInt64, 0 }

// take copies the next n samples (silence past the buffer) into every
// stride-th element of dst starting at dst[0], and drops them from the
// buffer. Copying the rest down keeps the buffer's memory from creeping.
func (t *track) take(dst []int16, n, stride int) {
	k := min(n, len(t.buf))
	for i := range k {
		dst[i*stride] = t.buf[i]
	}
	for i := k; i < n; i++ {
		dst[i*stride] = 0
	}
	rest := copy(t.buf, t.buf[k:])
	t.buf = t.buf[:rest]
}
