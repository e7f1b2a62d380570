package recording

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchMinute is one minute of call audio in 20 ms frames: the callee
// talks 4 s in every 10, the agent answers for 4 s after it (nil frames
// where the agent is silent). The voices are harmonic series with a
// syllable-rate envelope, so the encoder works as hard as on speech.
type benchMinute struct{ callee, agent [][]int16 }

func newBenchMinute() benchMinute {
	const frame = testRate / 50
	var m benchMinute
	voice := func(f0 float64, t float64) int16 {
		env := 0.5 + 0.5*math.Sin(2*math.Pi*4*t)
		var v float64
		for h := 1.0; h <= 12; h++ {
			v += math.Sin(2*math.Pi*f0*h*t+h) / h
		}
		return int16(5000 * env * v)
	}
	for i := range 3000 {
		c := make([]int16, frame)
		sec := float64(i) / 50
		phase := math.Mod(sec, 10)
		for k := range c {
			if phase < 4 {
				c[k] = voice(130, sec+float64(k)/testRate)
			}
		}
		m.callee = append(m.callee, c)
		if phase >= 5 && phase < 9 {
			a := make([]int16, frame)
			for k := range a {
				a[k] = voice(210, sec+float64(k)/testRate)
			}
			m.agent = append(m.agent, a)
		} else {
			m.agent = append(m.agent, nil)
		}
	}
	return m
}

func (bm benchMinute) feed(tb testing.TB, rec *Recorder, start time.Time, minute int) {
	base := time.Duration(minute) * time.Minute
	for i := range bm.callee {
		if i%25 == 0 {
			waitForMixer(tb, rec)
		}
		at := start.Add(base + time.Duration(i)*20*time.Millisecond)
		rec.CalleeAudio(at, bm.callee[i])
		if bm.agent[i] != nil {
			rec.AgentPlayed(at, bm.agent[i])
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordCallMinute: one op is one minute of a two-sided call
// recorded end to end (mixing, Opus, Ogg, segments, joining) into memory
// storage, at each Opus complexity. cpu-ms/call-min is the process CPU it
// took, the figure that sizes how many calls a dyno can record.
func BenchmarkRecordCallMinute(b *testing.B) {
	bm := newBenchMinute()
	for _, complexity := range []int{1, 3, 5, 10} {
		b.Run(fmt.Sprintf("complexity=%d", complexity), func(b *testing.B) {
			st := newMemStorage(b)
			start := testStart()
			rec, err := New(Config{AttemptID: "bench", Env: "bench", Start: start, Spool: newSpool(b, st),
				Options: Options{Now: frozenClock(start), Complexity: complexity}})
			require.NoError(b, err)
			cpu0 := cpuTime()
			b.ResetTimer()
			for m := range b.N {
				bm.feed(b, rec, start, m)
			}
			res, err := rec.Finish(context.Background())
			b.StopTimer()
			require.NoError(b, err)
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/call-min")
			b.ReportMetric(float64(res.Stored.Bytes)/float64(b.N)/1024, "KiB/call-min")
		})
	}
}

// BenchmarkPeakHeap records whole calls of 5 and 30 minutes, fed as fast
// as the recorder takes them, into MinIO. live-KiB is the most heap still
// in use after a GC, sampled every simulated minute: it must not grow with
// the call. peak-MiB is the highest heap sampled every 2 ms, garbage
// included; close-peak-MiB is that during Close (joining the segments into
// the final object through one upload part).
func BenchmarkPeakHeap(b *testing.B) {
	st := minio(b)
	bm := newBenchMinute()
	for _, minutes := range []int{5, 30} {
		b.Run(time.Duration(minutes*int(time.Minute)).String(), func(b *testing.B) {
			for range b.N {
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				base := ms.HeapAlloc

				var peak atomic.Uint64
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() {
					t := time.NewTicker(2 * time.Millisecond)
					defer t.Stop()
					var s runtime.MemStats
					for {
						select {
						case <-stop:
							return
						case <-t.C:
						}
						runtime.ReadMemStats(&s)
						if s.HeapAlloc > peak.Load() {
							peak.Store(s.HeapAlloc)
						}
					}
				})

				start := time.Now()
				rec, err := New(Config{AttemptID: "peak", Env: "bench", Start: start, Spool: newSpool(b, st),
					Options: Options{Now: frozenClock(start)}})
				require.NoError(b, err)
				var live uint64
				for m := range minutes {
					bm.feed(b, rec, start, m)
					runtime.GC()
					runtime.ReadMemStats(&ms)
					live = max(live, ms.HeapAlloc-min(ms.HeapAlloc, base))
				}
				callPeak := peak.Swap(0)
				res, err := rec.Finish(context.Background())
				closePeak := peak.Load()
				close(stop)
				wg.Wait()
				require.NoError(b, err)
				st.Delete(context.Background(), res.Stored.Key)
				b.ReportMetric(float64(live)/1024, "live-KiB")
				b.ReportMetric(float64(callPeak-min(callPeak, base))/(1<<20), "peak-MiB")
				b.ReportMetric(float64(closePeak-min(closePeak, base))/(1<<20), "close-peak-MiB")
				b.ReportMetric(float64(res.Stored.Bytes)/(1<<20), "object-MiB")
			}
		})
	}
}
