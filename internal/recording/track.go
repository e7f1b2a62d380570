package recording

import (
	"math"
	"time"
)

// Placement. A packet's stamp says when it was heard, but stamps carry
// arrival jitter: a receive path that stalls delivers the owed packets in a
// burst, all stamped alike, and a lost packet leaves a hole the stamps do
// not explain. So a side's packets are stitched end to end on the 20 ms
// grid (no holes or overlaps from jitter), and the stamps steer: the
// smallest gap between stamp and stitched position over a short window is
// the side's real offset, since jitter only ever delays a stamp. When that
// offset is off by more than syncTolerance, the next packet moves by it,
// in whole frames.
const (
	// maxJoin: a packet stamped more than this after the side's previous
	// packet ended starts a new stretch of sound (the agent's next reply, a
	// callee after DTX silence) and is placed at its stamp at once.
	maxJoin = 100 * time.Millisecond
	// maxLead: a packet stamped this long before its stitched position is
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

// placement holds the tolerances above in 48 kHz samples.
type placement struct {
	join, lead, window, tolerance int64
}

func newPlacement() placement {
	return placement{
		join:      samples48(maxJoin),
		lead:      samples48(maxLead),
		window:    samples48(syncWindow),
		tolerance: samples48(syncTolerance),
	}
}

// track is one side's packets waiting to be written, one per 20 ms slot.
// It belongs to the mixer goroutine.
type track struct {
	p placement
	// slots holds the packets from the mixer's first unwritten slot on;
	// nil where the side sent nothing (silence goes there).
	slots [][]byte
	// cursor is the position just after the side's last packet; -1 before
	// the first. Positions are in 48 kHz samples from the call's start,
	// and a placed packet always starts on the grid.
	cursor int64
	// minOffset is the smallest stamp-minus-cursor seen over the current
	// window, which holds winLen samples.
	minOffset, winLen int64
	// late counts samples that arrived after their slot was written.
	late int64
}

func newTrack(p placement) *track { return &track{p: p, cursor: -1, minOffset: math.MaxInt64} }

// place puts a 20 ms packet stamped at position at (48 kHz samples from
// the call start) into its slot, given that slot base is the first not yet
// written, and returns the position after it. A packet already in the
// slot is replaced: the newer stamp wins.
func (t *track) place(at int64, pkt []byte, base int64) int64 {
	pos := at
	if off := at - t.cursor; t.cursor >= 0 && off <= t.p.join && -off <= t.p.lead {
		pos = t.cursor
		t.minOffset = min(t.minOffset, off)
		t.winLen += frame48
		if t.winLen >= t.p.window {
			if t.minOffset > t.p.tolerance || -t.minOffset > t.p.tolerance {
				pos += roundFrames(t.minOffset)
			}
			t.resetWindow()
		}
	} else {
		pos = roundFrames(at)
		t.resetWindow()
	}
	t.cursor = pos + frame48
	slot := pos / frame48
	if slot < base {
		t.late += frame48
		return t.cursor
	}
	i := int(slot - base)
	if i >= len(t.slots) {
		t.slots = append(t.slots, make([][]byte, i+1-len(t.slots))...)
	}
	t.slots[i] = pkt
	return t.cursor
}

func (t *track) resetWindow() { t.minOffset, t.winLen = math.MaxInt64, 0 }

// take returns the next slot's packet (nil: the side was silent) and drops
// it. Copying the rest down keeps the slice's memory from creeping.
func (t *track) take() []byte {
	if len(t.slots) == 0 {
		return nil
	}
	pkt := t.slots[0]
	n := copy(t.slots, t.slots[1:])
	t.slots[n] = nil
	t.slots = t.slots[:n]
	return pkt
}

// roundFrames rounds a position to the nearest slot start (halves up).
func roundFrames(pos int64) int64 {
	if pos >= 0 {
		return (pos + frame48/2) / frame48 * frame48
	}
	return -((-pos + frame48/2 - 1) / frame48 * frame48)
}
