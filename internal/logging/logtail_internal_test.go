package logging

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

// bareLogTail is a LogTail with no shipper, so the buffer's policy can be
// driven step by step.
func bareLogTail(bufferBytes, batchBytes int) *LogTail {
	return &LogTail{
		opts:     LogTailOptions{BufferBytes: bufferBytes, BatchBytes: batchBytes, BatchLines: 1 << 30},
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
}

// line100 is a 100-byte line whose text names it.
func line100(name string) []byte {
	return []byte(name + strings.Repeat(".", 99-len(name)) + "\n")
}

func queuedNames(lt *LogTail) []string {
	var names []string
	for _, l := range lt.queue.take(1<<30, 1<<30) {
		names = append(names, strings.TrimRight(string(l.b), ".\n"))
	}
	return names
}

func TestBufferEvictionOrder(t *testing.T) {
	per := 100 + lineOverhead
	lt := bareLogTail(10*per, 5*per)
	push := func(lvl zapcore.Level, name string) { lt.enqueue(lvl, line100(name)) }

	push(zapcore.ErrorLevel, "e1")
	push(zapcore.WarnLevel, "w1")
	for _, n := range []string{"i1", "i2", "i3", "i4", "i5", "i6", "d7", "i8"} {
		lvl := zapcore.InfoLevel
		if n[0] == 'd' {
			lvl = zapcore.DebugLevel
		}
		push(lvl, n)
	}
	require.Equal(t, 10*per, lt.queue.totalCost(), "exactly full, nothing dropped yet")
	require.Zero(t, lt.Stats().DroppedTotal)

	push(zapcore.InfoLevel, "i9")  // pushes out i1, the oldest low line
	push(zapcore.WarnLevel, "w2")  // pushes out i2
	push(zapcore.ErrorLevel, "e2") // pushes out i3
	for _, n := range []string{"e3", "e4", "e5", "e6", "e7"} {
		push(zapcore.ErrorLevel, n) // i4, i5, i6, d7, i8
	}
	push(zapcore.ErrorLevel, "e8")  // i9, the last low line
	push(zapcore.DebugLevel, "d10") // only warn/error queued: the newcomer goes
	push(zapcore.ErrorLevel, "e9")  // w1, the oldest warning
	push(zapcore.WarnLevel, "w3")   // w2
	push(zapcore.ErrorLevel, "e10") // w3: warnings before errors
	push(zapcore.ErrorLevel, "e11") // e1: only errors left, oldest first

	st := lt.Stats()
	require.EqualValues(t, 8, st.Dropped[zapcore.InfoLevel])
	require.EqualValues(t, 2, st.Dropped[zapcore.DebugLevel])
	require.EqualValues(t, 3, st.Dropped[zapcore.WarnLevel])
	require.EqualValues(t, 1, st.Dropped[zapcore.ErrorLevel])
	require.EqualValues(t, 14, st.BufferFull)
	require.LessOrEqual(t, st.PeakBufferedBytes, int64(10*per))
	require.Equal(t, []string{"e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9", "e10", "e11"}, queuedNames(lt),
		"what remains goes out in log order")
}

func TestBufferCountsTheBatchInFlight(t *testing.T) {
	per := 100 + lineOverhead
	lt := bareLogTail(6*per, 300)
	for _, n := range []string{"a", "b", "c", "d"} {
		lt.enqueue(zapcore.InfoLevel, line100(n))
	}
	b := lt.takeBatch(true)
	require.Len(t, b, 3, "a batch holds at most BatchBytes of lines")
	require.EqualValues(t, 4*per, lt.Stats().BufferedBytes, "in-flight lines still count against the cap")

	for _, n := range []string{"e", "f", "g"} {
		lt.enqueue(zapcore.InfoLevel, line100(n))
	}
	require.EqualValues(t, 1, lt.Stats().Dropped[zapcore.InfoLevel], "d made room for g: the batch in flight is not evicted")
	lt.batchDone()
	require.EqualValues(t, 3*per, lt.Stats().BufferedBytes)
	require.Equal(t, []string{"e", "f", "g"}, queuedNames(lt))

	lt.enqueue(zapcore.InfoLevel, make([]byte, 301))
	require.EqualValues(t, 1, lt.Stats().TooLarge, "a line longer than a batch is dropped at once")
}

func TestFifoKeepsOrderAcrossWrapAndResize(t *testing.T) {
	var f fifo
	next, want := uint64(0), uint64(0)
	pop := func(n int) {
		for range n {
			require.Equal(t, want, f.pop().seq)
			want++
		}
	}
	push := func(n int) {
		for range n {
			f.push(qline{seq: next})
			next++
		}
	}
	push(1000)
	pop(990)
	require.LessOrEqual(t, len(f.ring), 64, "a drained burst gives its memory back")
	push(37) // wraps around the shrunken ring
	pop(20)
	push(500)
	pop(f.len())
	require.Zero(t, f.len())
	require.Equal(t, next, want)
}

func TestRetryDelay(t *testing.T) {
	minD, maxD := 100*time.Millisecond, 2*time.Second
	between := func(d, lo, hi time.Duration) {
		t.Helper()
		require.GreaterOrEqual(t, d, lo)
		require.LessOrEqual(t, d, hi)
	}
	for range 50 { // jitter is random: check the bounds many times
		between(retryDelay(1, 0, minD, maxD, false), minD/2, minD)
		between(retryDelay(3, 0, minD, maxD, false), 2*minD, 4*minD)
		between(retryDelay(10, 0, minD, maxD, false), maxD/2, maxD)
		between(retryDelay(1000, 0, minD, maxD, false), maxD/2, maxD)
		between(retryDelay(1, 0, minD, maxD, true), maxD/2, maxD)
	}
	require.Equal(t, 7*time.Second, retryDelay(1, 7*time.Second, minD, maxD, false), "Retry-After wins when longer")
	require.Equal(t, maxRetryAfter, retryDelay(1, time.Hour, minD, maxD, false), "but is capped")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, 7*time.Second, parseRetryAfter("7", now))
	require.Equal(t, 30*time.Second, parseRetryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now))
	require.Zero(t, parseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
	require.Zero(t, parseRetryAfter("soon", now))
	require.Zero(t, parseRetryAfter("", now))
}

func TestClassifyStatus(t *testing.T) {
	cases := map[int]outcome{
		202: outcomeSent, 200: outcomeSent,
		402: outcomeQuota, 403: outcomeRejected, 401: outcomeRejected,
		406: outcomeMalformed, 413: outcomeTooLarge,
		408: outcomeRetry, 429: outcomeRetry, 500: outcomeRetry, 503: outcomeRetry,
		400: outcomeRefused, 404: outcomeRefused,
	}
	for status, want := range cases {
		require.Equal(t, want, classify(status), "status %d", status)
	}
}
