package logging

import "go.uber.org/zap/zapcore"

// Drop classes, least important first: when the buffer is full the oldest
// line of the lowest non-empty class goes.
const (
	classLow   = iota // debug, info
	classWarn         // warn
	classError        // error and above
	numClasses
)

func classOf(l zapcore.Level) int {
	switch {
	case l >= zapcore.ErrorLevel:
		return classError
	case l == zapcore.WarnLevel:
		return classWarn
	default:
		return classLow
	}
}

// lineOverhead approximates what a queued line costs beyond its bytes: its
// 40-byte qline with the ring's slack, and allocator rounding. Measured
// (BenchmarkLogTailSinkDownMinute) so the cap bounds the heap the buffer
// really holds, not just the payload.
const lineOverhead = 96

// qline is one encoded log line waiting to be shipped. seq orders lines
// across the per-class queues so batches go out in the order they were logged.
type qline struct {
	seq uint64
	lvl zapcore.Level
	b   []byte
}

func (l qline) cost() int { return len(l.b) + lineOverhead }

// fifo is a ring of lines. It grows and shrinks by powers of two, so its
// backing array stays within 2x (4x just before shrinking) of the lines it
// holds, and a burst's memory is returned once the burst has shipped.
type fifo struct {
	ring []qline
	head int
	n    int
}

func (f *fifo) len() int { return f.n }

func (f *fifo) push(l qline) {
	if f.n == len(f.ring) {
		f.resize(max(16, 2*len(f.ring)))
	}
	f.ring[(f.head+f.n)&(len(f.ring)-1)] = l
	f.n++
}

func (f *fifo) front() *qline { return &f.ring[f.head] }

func (f *fifo) pop() qline {
	l := f.ring[f.head]
	f.ring[f.head] = qline{} // let the line's bytes be collected
	f.head = (f.head + 1) & (len(f.ring) - 1)
	f.n--
	if len(f.ring) > 64 && f.n < len(f.ring)/4 {
		f.resize(len(f.ring) / 2)
	}
	return l
}

func (f *fifo) resize(size int) {
	ring := make([]qline, size)
	for i := range f.n {
		ring[i] = f.ring[(f.head+i)&(len(f.ring)-1)]
	}
	f.ring, f.head = ring, 0
}

// levelQueue is the bounded buffer's contents: one FIFO per drop class.
// It is not safe for concurrent use; LogTail guards it with its mutex.
type levelQueue struct {
	q     [numClasses]fifo
	cost  [numClasses]int // accounted bytes per class
	lines int
	bytes int // raw line bytes, what a batch body will hold
}

func (q *levelQueue) totalCost() int {
	return q.cost[classLow] + q.cost[classWarn] + q.cost[classError]
}

func (q *levelQueue) push(l qline) {
	c := classOf(l.lvl)
	q.q[c].push(l)
	q.cost[c] += l.cost()
	q.lines++
	q.bytes += len(l.b)
}

func (q *levelQueue) popClass(c int) qline {
	l := q.q[c].pop()
	q.cost[c] -= l.cost()
	q.lines--
	q.bytes -= len(l.b)
	return l
}

// costUpTo is what dropping every line of class c and below would free.
func (q *levelQueue) costUpTo(c int) int {
	n := 0
	for i := 0; i <= c; i++ {
		n += q.cost[i]
	}
	return n
}

// evictLowest drops the oldest line of the lowest non-empty class.
func (q *levelQueue) evictLowest() qline {
	for c := range q.q {
		if q.q[c].len() > 0 {
			return q.popClass(c)
		}
	}
	panic("logging: evictLowest on an empty queue")
}

// oldestClass is the class whose front line was logged first, or -1.
func (q *levelQueue) oldestClass() int {
	best := -1
	for c := range q.q {
		if q.q[c].len() == 0 {
			continue
		}
		if best < 0 || q.q[c].front().seq < q.q[best].front().seq {
			best = c
		}
	}
	return best
}

// minSeq is the seq of the oldest queued line.
func (q *levelQueue) minSeq() (uint64, bool) {
	c := q.oldestClass()
	if c < 0 {
		return 0, false
	}
	return q.q[c].front().seq, true
}

// take removes up to maxLines lines in log order whose bytes stay within
// maxBytes; it always takes at least one line when any is queued.
func (q *levelQueue) take(maxLines, maxBytes int) []qline {
	var out []qline
	size := 0
	for len(out) < maxLines {
		c := q.oldestClass()
		if c < 0 {
			break
		}
		n := len(q.q[c].front().b)
		if len(out) > 0 && size+n > maxBytes {
			break
		}
		out = append(out, q.popClass(c))
		size += n
	}
	return out
}

// drain removes every line, oldest first.
func (q *levelQueue) drain(each func(qline)) {
	for c := q.oldestClass(); c >= 0; c = q.oldestClass() {
		each(q.popClass(c))
	}
}
