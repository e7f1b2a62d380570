package recording

import (
	"context"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/hraban/opus.v2"
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

// packets encodes the minute as the telephony stack does (20 ms mono
// packets; the agent's silence too, as its player sends it), ahead of the
// benchmark: in a call the packets exist already.
func (bm benchMinute) packets(tb testing.TB) (callee, agent [][]byte) {
	send := [2]*sender{newSender(tb, senderKind{}), newSender(tb, senderKind{})}
	silent := make([]int16, testRate/50)
	for i := range bm.callee {
		callee = append(callee, send[0].packet(tb, bm.callee[i]))
		a := bm.agent[i]
		if a == nil {
			a = silent
		}
		agent = append(agent, send[1].packet(tb, a))
	}
	return callee, agent
}

type benchPackets struct{ callee, agent [][]byte }

func (bp benchPackets) feed(tb testing.TB, rec *Recorder, start time.Time, minute int) {
	base := time.Duration(minute) * time.Minute
	for i := range bp.callee {
		if i%25 == 0 {
			waitForMixer(tb, rec)
		}
		at := start.Add(base + time.Duration(i)*frameDuration)
		if bp.callee[i] != nil {
			rec.CalleePacket(at.Add(frameDuration), bp.callee[i])
		}
		if bp.agent[i] != nil {
			rec.AgentPacket(at, bp.agent[i])
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
// recorded end to end (placing, Ogg, segments, joining) into memory
// storage. cpu-ms/call-min is the process CPU it took, the figure that
// sizes how many calls a dyno can record. "packets" is the usual case, the
// senders' 20 ms packets written as they are; "reencoded" is the fallback
// for senders of 60 ms packets, decoded and encoded again on both sides
// (what every recording cost when the recorder mixed PCM: about 440 ms).
func BenchmarkRecordCallMinute(b *testing.B) {
	bm := newBenchMinute()
	var twenty benchPackets
	twenty.callee, twenty.agent = bm.packets(b)
	cases := []struct {
		name string
		pkts benchPackets
	}{{"packets", twenty}, {"reencoded", bm.packets60(b)}}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			st := newMemStorage(b)
			start := testStart()
			rec, err := New(Config{AttemptID: "bench", Env: "bench", Start: start, Spool: newSpool(b, st),
				Options: Options{Now: frozenClock(start)}})
			require.NoError(b, err)
			cpu0 := cpuTime()
			b.ResetTimer()
			for m := range b.N {
				c.pkts.feed(b, rec, start, m)
			}
			res, err := rec.Finish(context.Background())
			b.StopTimer()
			require.NoError(b, err)
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/call-min")
			b.ReportMetric(float64(res.Stored.Bytes)/float64(b.N)/1024, "KiB/call-min")
		})
	}
}

// packets60 is the minute as 60 ms packets, each fed as three 20 ms
// stamps' worth: a sender the recorder must re-encode.
func (bm benchMinute) packets60(tb testing.TB) benchPackets {
	var bp benchPackets
	var enc [2]*opus.Encoder
	for i := range enc {
		var err error
		enc[i], err = opus.NewEncoder(testRate, 1, opus.AppVoIP)
		require.NoError(tb, err)
	}
	silent := make([]int16, testRate/50)
	buf := make([]byte, maxPacket)
	for i := 0; i+3 <= len(bm.callee); i += 3 {
		for side, frames := range [2][][]int16{bm.callee[i : i+3], bm.agent[i : i+3]} {
			var pcm []int16
			for _, f := range frames {
				if f == nil {
					f = silent
				}
				pcm = append(pcm, f...)
			}
			n, err := enc[side].Encode(pcm, buf)
			require.NoError(tb, err)
			pkt := append([]byte(nil), buf[:n]...)
			// One packet per three slots; nil slots send nothing.
			if side == callee {
				bp.callee = append(bp.callee, nil, nil, pkt)
			} else {
				bp.agent = append(bp.agent, pkt, nil, nil)
			}
		}
	}
	return bp
}

// BenchmarkPeakHeap records whole calls of 5 and 30 minutes, fed as fast
// as the recorder takes them, into MinIO. live-KiB is the most heap still
// in use after a GC, sampled every simulated minute: it must not grow with
// the call. peak-MiB is the highest heap sampled every 2 ms, garbage
// included; close-peak-MiB is that during Close (joining the segments into
// the final object through one upload part).
func BenchmarkPeakHeap(b *testing.B) {
	st := minio(b)
	var bp benchPackets
	bp.callee, bp.agent = newBenchMinute().packets(b)
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
					bp.feed(b, rec, start, m)
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
