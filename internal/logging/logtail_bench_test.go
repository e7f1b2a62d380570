package logging_test

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// A typical line: the task middleware's completion event.
func logTaskDone(l *zap.Logger, i int) {
	l.Info("task.done",
		zap.String("task_id", "65f1c0ffee0000000000abcd"), zap.String("task_type", "call:outbound"),
		zap.String("queue", "calls"), zap.Int("retried", 0), zap.Int("i", i),
		zap.Duration("duration_ms", 1234*time.Millisecond), zap.String("outcome", "ok"))
}

func discardCore() zapcore.Core {
	return zapcore.NewCore(zapcore.NewJSONEncoder(logging.EncoderConfig()), zapcore.AddSync(io.Discard), zapcore.DebugLevel)
}

func benchLogTail(b *testing.B, sink *fakeSink, mutate func(*logging.LogTailOptions)) *logging.LogTail {
	b.Helper()
	o := logging.LogTailOptions{URL: sink.URL(), Token: "bench", Stdout: io.Discard}
	if mutate != nil {
		mutate(&o)
	}
	lt, err := logging.NewLogTail(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = lt.Close(ctx)
	})
	return lt
}

// BenchmarkLogTailShipping measures lines per second from log call to a 202
// from a loopback sink that gunzips and counts them, with default options.
func BenchmarkLogTailShipping(b *testing.B) {
	sink := startFakeSink(b)
	sink.countOnly = true
	lt := benchLogTail(b, sink, nil)
	log := zap.New(lt.Core(), zap.AddCaller())
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		logTaskDone(log, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := lt.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	st := lt.Stats()
	if got := uint64(sink.Count()); got != st.Shipped {
		b.Fatalf("sink counted %d lines, LogTail says %d shipped", got, st.Shipped)
	}
	b.ReportMetric(float64(st.Shipped)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(st.DroppedTotal)/float64(b.N), "dropped/line")
}

// BenchmarkLogCall compares the caller's cost of one log call: zap writing
// JSON to io.Discard alone, and the same core teed with the LogTail core
// (its shipper running against a loopback sink). "redacted" variants go
// through logging.New, as the worker does.
func BenchmarkLogCall(b *testing.B) {
	run := func(b *testing.B, log *zap.Logger) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			logTaskDone(log, i)
		}
	}
	b.Run("zap-discard", func(b *testing.B) {
		run(b, zap.New(discardCore(), zap.AddCaller()))
	})
	b.Run("zap-discard+logtail", func(b *testing.B) {
		sink := startFakeSink(b)
		sink.countOnly = true
		lt := benchLogTail(b, sink, nil)
		run(b, zap.New(zapcore.NewTee(discardCore(), lt.Core()), zap.AddCaller()))
	})
	b.Run("redacted-discard", func(b *testing.B) {
		log, err := logging.New(logging.Options{Out: zapcore.AddSync(io.Discard)})
		if err != nil {
			b.Fatal(err)
		}
		run(b, log)
	})
	b.Run("redacted-discard+logtail", func(b *testing.B) {
		sink := startFakeSink(b)
		sink.countOnly = true
		lt := benchLogTail(b, sink, nil)
		log, err := logging.New(logging.Options{Out: zapcore.AddSync(io.Discard), Sinks: []zapcore.Core{lt.Core()}})
		if err != nil {
			b.Fatal(err)
		}
		run(b, log)
	})
}

// BenchmarkLogCallRatio interleaves the two loggers in chunks within one
// run, so both see the same machine load, and reports tee/discard.
func BenchmarkLogCallRatio(b *testing.B) {
	sink := startFakeSink(b)
	sink.countOnly = true
	lt := benchLogTail(b, sink, nil)
	plain := zap.New(discardCore(), zap.AddCaller())
	teed := zap.New(zapcore.NewTee(discardCore(), lt.Core()), zap.AddCaller())
	const chunk = 512
	var plainT, teedT time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		t0 := time.Now()
		for i := range n {
			logTaskDone(plain, i)
		}
		t1 := time.Now()
		for i := range n {
			logTaskDone(teed, i)
		}
		plainT += t1.Sub(t0)
		teedT += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(float64(plainT.Nanoseconds())/float64(b.N), "discard-ns/call")
	b.ReportMetric(float64(teedT.Nanoseconds())/float64(b.N), "teed-ns/call")
	b.ReportMetric(float64(teedT)/float64(plainT), "x-discard")
}

// BenchmarkLogTailSinkDownMinute logs steadily (1000 lines per simulated
// second, 1% errors, ~330 bytes each, about twice the buffer over the minute) while the
// sink is unreachable, sampling memory every simulated second. It fails if
// the buffer ever holds more than its cap.
func BenchmarkLogTailSinkDownMinute(b *testing.B) {
	const perSecond, seconds = 1000, 60
	for range b.N {
		sink := startFakeSink(b)
		sink.Stop()
		lt := benchLogTail(b, sink, nil)
		capBytes := int64(8 << 20)
		log := zap.New(lt.Core(), zap.AddCaller())

		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var peakHeap uint64
		for s := range seconds {
			for i := range perSecond {
				if i%100 == 0 {
					log.Error("task.failed", zap.Int("i", s*perSecond+i), zap.String("error", "dial timeout"))
					continue
				}
				logTaskDone(log, s*perSecond+i)
			}
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapAlloc)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		live := int64(ms.HeapAlloc) - int64(base)
		st := lt.Stats()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_ = lt.Close(ctx) // the sink is still down: this gives up at its deadline
		cancel()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		// What Close released is what the buffer held; the rest of the
		// growth is the shipper's fixed state (gzip, HTTP transport).
		held := int64(ms.HeapAlloc) - int64(base)
		if st.PeakBufferedBytes > capBytes {
			b.Fatalf("buffer peaked at %d bytes, cap %d", st.PeakBufferedBytes, capBytes)
		}
		if st.DroppedTotal == 0 {
			b.Fatal("a minute of logging should have overflowed the buffer")
		}
		if st.Dropped[zapcore.ErrorLevel] != 0 {
			b.Fatalf("%d error lines dropped while info lines could go", st.Dropped[zapcore.ErrorLevel])
		}
		const mib = 1 << 20
		b.ReportMetric(float64(st.PeakBufferedBytes)/mib, "peak-buffered-MiB")
		b.ReportMetric(float64(capBytes)/mib, "cap-MiB")
		b.ReportMetric(float64(peakHeap-base)/mib, "peak-heap-growth-MiB")
		b.ReportMetric(float64(live)/mib, "live-heap-growth-MiB")
		b.ReportMetric(float64(live-held)/mib, "buffer-heap-MiB")
		b.ReportMetric(float64(st.DroppedTotal), "dropped-lines")
		b.ReportMetric(float64(st.Shipped), "shipped-lines")
	}
}
