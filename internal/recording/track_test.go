package recording

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// placeFrames places 20 ms packets given as {true position, stamp} in ms
// and returns where each landed, in ms.
func placeFrames(t *testing.T, frames [][2]int64) []int64 {
	t.Helper()
	tr := newTrack(newPlacement())
	var got []int64
	for _, f := range frames {
		end := tr.place(f[1]*48, silence, 0)
		require.Zero(t, end%frame48, "a packet starts on the grid")
		got = append(got, (end-frame48)/48)
	}
	return got
}

// frames builds n consecutive 20 ms frames from true position from, each
// stamped by stamp(i, true position).
func frames(from int64, n int, stamp func(i int, pos int64) int64) [][2]int64 {
	var out [][2]int64
	for i := range n {
		pos := from + int64(20*i)
		out = append(out, [2]int64{pos, stamp(i, pos)})
	}
	return out
}

func TestPlacementStitchesJitterAndBursts(t *testing.T) {
	// Arrival 0-15 ms late, and every 30th frame a 60 ms stall that
	// releases four frames with one stamp.
	fs := frames(0, 300, func(i int, pos int64) int64 {
		if i%30 >= 27 {
			return int64(20*(i/30*30+30)) + 5
		}
		return pos + int64((i*7)%16)
	})
	got := placeFrames(t, fs)
	for i, f := range fs {
		require.Equal(t, f[0], got[i], "frame %d", i)
	}
}

func TestPlacementStartsNewStretchAtItsStamp(t *testing.T) {
	fs := append(frames(0, 10, func(_ int, p int64) int64 { return p }),
		frames(700, 10, func(_ int, p int64) int64 { return p + 3 })...)
	got := placeFrames(t, fs)
	require.Equal(t, int64(180), got[9])
	require.Equal(t, int64(700), got[10], "after a pause the stamp places the packet, on the nearest slot")
	require.Equal(t, int64(720), got[11])
}

// Lost frames leave the side early by their length until the end of the
// first window measured wholly after the loss.
func TestPlacementRecoversFromLostFrames(t *testing.T) {
	fs := frames(0, 100, func(_ int, p int64) int64 { return p + 2 })
	fs = append(fs[:40], fs[43:]...) // 60 ms lost at 800 ms
	got := placeFrames(t, fs)
	last := len(fs) - 1
	require.InDelta(t, fs[last][0], got[last], float64(syncTolerance/time.Millisecond))
	// Never more than the lost 60 ms off, and for at most two windows.
	off := 0
	for i := range fs {
		d := fs[i][0] - got[i]
		require.LessOrEqual(t, d, int64(60))
		if d > int64(syncTolerance/time.Millisecond) {
			off++
		}
	}
	require.LessOrEqual(t, off, 2*int(syncWindow/(20*time.Millisecond)))
	require.Positive(t, off, "the loss did show")
}

// A sender clock 1% slow or fast is kept within the tolerance.
func TestPlacementFollowsClockDrift(t *testing.T) {
	for _, ppm := range []int64{10000, -10000} {
		fs := frames(0, 1500, func(_ int, p int64) int64 { return p + p*ppm/1_000_000 })
		got := placeFrames(t, fs)
		for i, f := range fs {
			// Where the frame should be is its stamp.
			require.InDelta(t, f[1], got[i], float64(syncTolerance/time.Millisecond)+20, "ppm %d frame %d", ppm, i)
		}
	}
}

func TestPlacementDropsWhatIsAlreadyWritten(t *testing.T) {
	tr := newTrack(newPlacement())
	a, b := []byte{1}, []byte{2}
	end := tr.place(-11*48, a, 0) // rounds to -20 ms: before the start
	require.Equal(t, int64(0), end)
	require.Equal(t, int64(frame48), tr.late)
	require.Empty(t, tr.slots)
	tr.place(9*48, a, 0)   // rounds to slot 0
	tr.place(140*48, b, 0) // 120 ms after the last one ended: at its stamp
	require.Equal(t, [][]byte{a, nil, nil, nil, nil, nil, nil, b}, tr.slots)
	tr.place(400*48, b, 30) // slot 20 is before base 30
	require.Equal(t, int64(2*frame48), tr.late)
}

func TestTakeGivesSlotsInOrderAndNilForSilence(t *testing.T) {
	tr := newTrack(newPlacement())
	a := []byte{1}
	tr.place(20*48, a, 0)
	require.Nil(t, tr.take())
	require.Equal(t, a, tr.take())
	require.Nil(t, tr.take(), "past the last packet: silence")
	require.Empty(t, tr.slots)
}
