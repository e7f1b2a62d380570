package call_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/call"
	"github.com/docshield/voice-worker/internal/logging"
	"github.com/docshield/voice-worker/internal/monitor"
	"github.com/docshield/voice-worker/internal/realtime"
	"github.com/docshield/voice-worker/internal/realtime/realtimesim"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// How many concurrent calls one worker process holds on a Heroku
// standard-1x dyno (512 MB, warned at 450 MB RSS; one CPU, warned at 70%),
// and what each call costs.
//
// Each level places N calls at once (started 150 ms apart) through the
// real Handler and Runner, with the daemon's recorder (two-channel Ogg Opus
// streamed to the devstack's MinIO, segments noted in FerretDB), real
// LiveKit rooms and Opus legs, and the realtime client talking to the
// realtime simulator paced in real time. A call lasts about 33 s: the
// agent's greeting, then four exchanges of a spoken callee line (espeak-ng)
// and an agent reply, then the callee hangs up; audio flows both ways all
// along (50 frames a second each way, silence between turns), and the
// first 30-s recording segment is stored mid-call.
//
// The simulators run in a child process (capacity_helpers_test.go), so this
// process holds what a worker holds: agent seats, realtime clients,
// recorders, store and storage clients. It measures itself with the
// readers the worker's health monitor uses: the peak RSS of each level
// (VmHWM, reset per level, so no spike is missed between samples), Go heap
// in use and goroutines while all N calls are live, and CPU time
// (utime+stime) over that steady window. The per-call figures are slopes
// across the levels, so the process's fixed cost (runtime, binary, client
// pools) is the intercept and not charged to calls:
//
//	calls-per-dyno-by-memory = floor((450 MiB - base-rss) / rss-per-call)
//	calls-per-dyno-by-cpu    = floor((0.7 core - base-cpu) / cpu-per-call)
//	calls-per-dyno           = the smaller
//
// LiveKit, MinIO, FerretDB and the child share the machine's cores with
// the worker: each level reports how busy the whole machine was, what the
// simulators used, the reply latency the callee heard (which grows when
// the machine, not necessarily the worker, runs out of CPU) and how much
// of the agent's audio arrived. A level where the machine was 90% busy or
// the agent's player skipped frames is left out of the CPU fit: there the
// worker got less CPU than it asked for, and replies that came late left
// less speech (which costs the codecs more than silence) in the window.
// On a 2-core machine the simulators cost about what the worker does, so
// that happens from about 20 calls on; run the larger levels on a bigger
// machine. (Around 40 calls FerretDB's SQLite also starts refusing writes
// with SQLITE_BUSY, a limit of the local stack, not of Atlas.)
//
//	make bench   (or: devstack exec -- go test -run '^$' -bench CallCapacity -benchtime 1x ./internal/call/)
//	CALL_CAPACITY_LEVELS=1,10,20,30,40 for other levels (about 40 s each)

const (
	capacityLevelsEnv    = "CALL_CAPACITY_LEVELS"
	capacityDefaultLevel = "1,5,10,15,20" // about 3 minutes together
	capacityStagger      = 150 * time.Millisecond
	capacityLevelTimeout = 4 * time.Minute
	capacitySample       = 100 * time.Millisecond
	// The dyno's budget (DESIGN.md invariant 4; the health monitor's CPU
	// warning).
	dynoWarnRSSMiB  = 450
	dynoWarnCPUCore = 0.7
)

func BenchmarkCallCapacity(b *testing.B) {
	levels := capacityLevels(b)
	e := newCapacityEnv(b)
	var measured []levelResult
	for _, n := range levels {
		b.Run("calls="+strconv.Itoa(n), func(b *testing.B) {
			var runs []levelResult
			for range b.N {
				runs = append(runs, e.runLevel(b, n))
			}
			measured = append(measured, runs...)
			runs[len(runs)-1].report(b)
		})
	}
	b.Run("dyno", func(b *testing.B) { reportDyno(b, measured) })
}

func capacityLevels(b *testing.B) []int {
	spec := os.Getenv(capacityLevelsEnv)
	if spec == "" {
		spec = capacityDefaultLevel
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 200 {
			b.Fatalf("%s=%q: want comma-separated call counts between 1 and 200", capacityLevelsEnv, spec)
		}
		out = append(out, n)
	}
	return out
}

// capacityEnv is one worker's wiring, as cmd/worker builds it, shared by
// every level.
type capacityEnv struct {
	st      *store.Store
	s3      *bucket.Client
	net     *phoneNetwork
	handler *call.Handler
	log     *zap.Logger
	self    monitor.ProcFS
	prefix  string
	seq     int
	// live counts answered calls whose line is still up.
	live atomic.Int64
}

func newCapacityEnv(b *testing.B) *capacityEnv {
	b.Helper()
	tcfg := telephony.Config{
		URL:       testenv.Get(b, "LIVEKIT_URL"),
		APIKey:    testenv.Get(b, "LIVEKIT_API_KEY"),
		APISecret: testenv.Get(b, "LIVEKIT_API_SECRET"),
		CallerID:  callerID,
		// As the daemon sets it (cmd/worker/calls.go).
		MaxCallDuration: call.DefaultMaxDuration + 2*time.Minute,
	}
	s3env := testenv.S3(b)
	s3, err := bucket.New(context.Background(), bucket.Options{
		Region: s3env.Region, AccessKeyID: s3env.AccessKeyID, SecretAccessKey: s3env.SecretAccessKey,
		Bucket: s3env.Bucket, Endpoint: s3env.Endpoint,
	})
	require.NoError(b, err)
	// The daemon's JSON logger, redaction included; the lines go nowhere.
	log, err := logging.New(logging.Options{Level: "info", Out: zapcore.AddSync(io.Discard)})
	require.NoError(b, err)
	e := &capacityEnv{
		st: openStore(b), s3: s3, log: log, net: startPhoneNetwork(b),
		self: monitor.DefaultProcFS(),
	}
	name := testenv.UniqueName(b)
	e.prefix = name[len(name)-8:] // its random part
	rooms, err := telephony.NewRooms(tcfg, log)
	require.NoError(b, err)
	runner, err := call.NewRunner(call.Options{
		Store:     e.st,
		Rooms:     hangupCounter{Rooms: rooms, hungUp: func() { e.live.Add(-1) }},
		Dialer:    &networkDialer{n: e.net, answered: func() { e.live.Add(1) }},
		Telephony: tcfg,
		Realtime: realtime.Config{BaseURL: e.net.addrs.Realtime, APIKey: realtimesim.DefaultAPIKey,
			Model: realtime.DefaultModel},
		Prompts:    call.StorePrompts(e.st),
		Analyze:    &enqueuer{},
		Recordings: startRecordings(b, s3, e.st, 0, log, func(o *call.RecordingOptions) { o.Env = "development" }).Factory(),
		Logger:     log,
	})
	require.NoError(b, err)
	e.handler = &call.Handler{Calls: e.st, Runner: runner, Owner: "capacity-bench", Lease: call.DefaultLease}
	return e
}

// procSample is the process (and the machine) at one moment of a level.
type procSample struct {
	at         time.Time
	cpu        time.Duration
	rss        int64
	heap       uint64
	goroutines int
	live       int64
	sim        time.Duration // the child's CPU time
	machine    time.Duration // every process's CPU time
}

func (e *capacityEnv) sample() procSample {
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(m)
	s := procSample{at: time.Now(), heap: m[0].Value.Uint64(), goroutines: runtime.NumGoroutine(), live: e.live.Load()}
	s.cpu, _ = e.self.CPUTime()
	s.rss, _ = e.self.RSSBytes()
	s.sim, _ = e.net.proc.CPUTime()
	s.machine, _ = machineBusy()
	return s
}

// levelResult is one level's figures.
type levelResult struct {
	n        int
	failures []string
	peakRSS  int64 // VmHWM over the whole level: setup, calls, teardown
	// While all n calls were live:
	steady                time.Duration
	steadyRSS             int64
	heap                  uint64
	goroutines            int
	cores, simCores, busy float64
	allInCPUPerCallMinute time.Duration // the level's CPU over its call-minutes
	// workerReply: the worker's own reply latency (the call document's,
	// less the simulator's delay). heard: at the callee, less the
	// simulator's delay and VAD window; it still holds the media path and
	// the detectors' frame grid, so its growth across levels is the point.
	workerReply, heard     []time.Duration
	continuity             []float64 // per call, see calleeResult
	callMinutes, levelSecs float64
}

// runLevel places n calls at once and measures the process while they run.
func (e *capacityEnv) runLevel(b *testing.B, n int) levelResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), capacityLevelTimeout)
	defer cancel()
	ids := make([]string, n)
	tks := make([]*asynq.Task, n)
	for i := range n {
		e.seq++
		ids[i] = fmt.Sprintf("cap-%s-%05d", e.prefix, e.seq)
		tks[i] = task(b, tasks.CallOutbound{Inline: &tasks.InlineCall{
			AttemptID: ids[i], Phone: calleePhone, Instructions: instructions,
			Variables: map[string]string{"practice_name": "Elm Dental"},
		}})
	}
	// Start from what the process really holds, not from garbage and
	// freed pages the last level left.
	runtime.GC()
	debug.FreeOSMemory()
	require.NoError(b, resetPeakRSS())

	stop := e.startSampler()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTimer(time.Duration(i) * capacityStagger)
			defer t.Stop()
			select {
			case <-t.C:
				errs[i] = e.handler.ProcessTask(ctx, tks[i])
			case <-ctx.Done():
				errs[i] = ctx.Err()
			}
		}()
	}
	wg.Wait()
	ss := stop()
	peak, err := peakRSS()
	require.NoError(b, err)

	r := levelResult{n: n, peakRSS: peak, levelSecs: ss[len(ss)-1].at.Sub(ss[0].at).Seconds()}
	for i, id := range ids {
		r.check(ctx, b, e, id, errs[i])
	}
	r.steadyFigures(ss)
	if r.steady < 5*time.Second {
		r.failures = append(r.failures, fmt.Sprintf("all %d calls were live together for only %s", n, r.steady))
	}
	cpu := ss[len(ss)-1].cpu - ss[0].cpu
	if r.callMinutes > 0 {
		r.allInCPUPerCallMinute = time.Duration(float64(cpu) / r.callMinutes)
	}
	return r
}

// check records one call's outcome: completed by the callee hanging up
// after all its lines, with a stored recording, nothing failed on the way.
func (r *levelResult) check(ctx context.Context, b *testing.B, e *capacityEnv, id string, runErr error) {
	fail := func(format string, args ...any) {
		r.failures = append(r.failures, id+": "+fmt.Sprintf(format, args...))
	}
	if runErr != nil {
		fail("task: %v", runErr)
		return
	}
	c, err := e.st.GetCall(context.Background(), id)
	require.NoError(b, err)
	d, err := e.st.GetCallDetails(context.Background(), id)
	require.NoError(b, err)
	if !c.AnsweredAt.IsZero() && c.EndedAt.After(c.AnsweredAt) {
		r.callMinutes += c.EndedAt.Sub(c.AnsweredAt).Minutes()
	}
	switch {
	case c.Status != store.CallCompleted || d.EndReason != "callee hung up":
		fail("ended %s: %s", c.Status, d.EndReason)
		return
	case c.Recording == nil || c.Recording.Bytes == 0 || d.RecordingError != "":
		fail("no recording: %s", d.RecordingError)
		return
	}
	for _, ms := range c.LatenciesMS {
		r.workerReply = append(r.workerReply, time.Duration(ms-capacityDelayMS)*time.Millisecond)
	}
	heard, err := e.net.result(ctx, telephony.RoomName(id))
	switch {
	case err != nil:
		fail("%v", err)
	case heard.Err != "":
		fail("callee: %s", heard.Err)
	case len(heard.ReplyMS) < capacityTurns:
		fail("callee heard %d replies to its %d lines", len(heard.ReplyMS), capacityTurns)
	}
	r.continuity = append(r.continuity, heard.Continuity)
	for _, ms := range heard.ReplyMS {
		r.heard = append(r.heard, time.Duration((ms-capacityDelayMS-capacitySilenceMS)*float64(time.Millisecond)))
	}
}

// startSampler samples the process every capacitySample until stop, which
// returns the samples (a first and a last one included).
func (e *capacityEnv) startSampler() func() []procSample {
	quit, done := make(chan struct{}), make(chan struct{})
	var out []procSample
	go func() {
		defer close(done)
		t := time.NewTicker(capacitySample)
		defer t.Stop()
		out = append(out, e.sample())
		for {
			select {
			case <-t.C:
				out = append(out, e.sample())
			case <-quit:
				out = append(out, e.sample())
				return
			}
		}
	}()
	return func() []procSample {
		close(quit)
		<-done
		return out
	}
}

// steadyFigures measures the longest stretch during which all n calls
// were live: the rate of CPU use and the most memory and goroutines.
func (r *levelResult) steadyFigures(ss []procSample) {
	best, bestLen := -1, 0
	for i := 0; i < len(ss); {
		if ss[i].live != int64(r.n) {
			i++
			continue
		}
		j := i
		for j+1 < len(ss) && ss[j+1].live == int64(r.n) {
			j++
		}
		if j-i > bestLen {
			best, bestLen = i, j-i
		}
		i = j + 1
	}
	if best < 0 || bestLen == 0 {
		return
	}
	first, last := ss[best], ss[best+bestLen]
	r.steady = last.at.Sub(first.at)
	secs := r.steady.Seconds()
	r.cores = (last.cpu - first.cpu).Seconds() / secs
	r.simCores = (last.sim - first.sim).Seconds() / secs
	r.busy = (last.machine - first.machine).Seconds() / secs
	for _, s := range ss[best : best+bestLen+1] {
		r.steadyRSS = max(r.steadyRSS, s.rss)
		r.heap = max(r.heap, s.heap)
		r.goroutines = max(r.goroutines, s.goroutines)
	}
}

const capacityMiB = 1 << 20

// starved says why a level's CPU figure is not the worker's need: the
// machine had no CPU to spare (so the worker got less than it asked for),
// or the agent's player had to skip frames. "" when neither.
func (r levelResult) starved() string {
	if busy := r.busy / float64(runtime.NumCPU()); busy >= 0.9 {
		return fmt.Sprintf("the machine was %.0f%% busy", busy*100)
	}
	if len(r.continuity) > 0 && slices.Min(r.continuity) < 0.98 {
		return fmt.Sprintf("a callee received only %.1f%% of the agent's audio frames", slices.Min(r.continuity)*100)
	}
	return ""
}

func distinctCount(xs []float64) int {
	seen := map[float64]bool{}
	for _, x := range xs {
		seen[x] = true
	}
	return len(seen)
}

func (r levelResult) report(b *testing.B) {
	b.ReportMetric(0, "ns/op") // an op is a whole level; its time says nothing
	b.ReportMetric(float64(len(r.failures)), "failed-calls")
	b.ReportMetric(float64(r.peakRSS)/capacityMiB, "peak-rss-MiB")
	b.ReportMetric(float64(r.steadyRSS)/capacityMiB, "steady-rss-MiB")
	b.ReportMetric(float64(r.heap)/capacityMiB, "heap-MiB")
	b.ReportMetric(float64(r.goroutines), "goroutines")
	b.ReportMetric(r.cores, "cpu-cores")
	b.ReportMetric(r.cores/float64(r.n)*60000, "cpu-ms-per-call-minute")
	b.ReportMetric(float64(r.allInCPUPerCallMinute.Milliseconds()), "allin-cpu-ms-per-call-minute")
	b.ReportMetric(r.simCores, "sim-cpu-cores")
	b.ReportMetric(r.busy, "machine-busy-cores")
	if len(r.workerReply) > 0 {
		b.ReportMetric(millis(percentile(r.workerReply, 95)), "worker-reply-p95-ms")
	}
	if len(r.continuity) > 0 {
		b.ReportMetric(slices.Min(r.continuity)*100, "agent-audio-min-%")
	}
	if len(r.heard) > 0 {
		b.ReportMetric(millis(percentile(r.heard, 50)), "heard-reply-p50-ms")
		b.ReportMetric(millis(percentile(r.heard, 95)), "heard-reply-p95-ms")
	}
	b.Logf("%d calls: steady %.1fs of %.1fs, %.2f call-minutes; peak RSS %.1f MiB, steady RSS %.1f MiB, heap %.1f MiB, %d goroutines; "+
		"worker %.3f cores, simulators %.3f, whole machine %.2f of %d",
		r.n, r.steady.Seconds(), r.levelSecs, r.callMinutes, float64(r.peakRSS)/capacityMiB, float64(r.steadyRSS)/capacityMiB, float64(r.heap)/capacityMiB,
		r.goroutines, r.cores, r.simCores, r.busy, runtime.NumCPU())
	if why := r.starved(); why != "" {
		b.Logf("CPU starved: %s; the CPU figures of this level understate the worker's need", why)
	}
	for i, f := range r.failures {
		if i == 10 {
			b.Logf("... and %d more failures", len(r.failures)-i)
			break
		}
		b.Logf("failed: %s", f)
	}
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportDyno fits the levels with no failed call: the slopes are the
// per-call costs, the intercepts the process's fixed cost.
func reportDyno(b *testing.B, levels []levelResult) {
	var ns, rss, heap, gor, cpuNs, cores []float64
	for _, r := range levels {
		if len(r.failures) > 0 {
			b.Logf("left out of the fit: %d calls (%d failed)", r.n, len(r.failures))
			continue
		}
		ns = append(ns, float64(r.n))
		rss = append(rss, float64(r.peakRSS)/capacityMiB)
		heap = append(heap, float64(r.heap)/capacityMiB)
		gor = append(gor, float64(r.goroutines))
		if why := r.starved(); why != "" {
			b.Logf("left out of the CPU fit: %d calls (%s)", r.n, why)
			continue
		}
		cpuNs = append(cpuNs, float64(r.n))
		cores = append(cores, r.cores)
	}
	if distinctCount(ns) < 2 || distinctCount(cpuNs) < 2 {
		b.Skip("the dyno figures need at least two levels without failed calls (and with CPU to spare)")
	}
	rssPerCall, baseRSS := fitLine(ns, rss)
	heapPerCall, _ := fitLine(ns, heap)
	gorPerCall, _ := fitLine(ns, gor)
	// The cost per call falls as calls are added (the per-frame wake-ups
	// of a nearly idle process cost more than those of a busy one), so the
	// line through all levels has a positive intercept and is steepest
	// where it matters; near the dyno's size it meets the measured figure.
	corePerCall, baseCores := fitLine(cpuNs, cores)
	byMem := math.Floor((dynoWarnRSSMiB - baseRSS) / rssPerCall)
	byCPU := math.Floor((dynoWarnCPUCore - max(baseCores, 0)) / corePerCall)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rssPerCall, "rss-MiB-per-call")
	b.ReportMetric(baseRSS, "base-rss-MiB")
	b.ReportMetric(heapPerCall, "heap-MiB-per-call")
	b.ReportMetric(gorPerCall, "goroutines-per-call")
	b.ReportMetric(corePerCall*60000, "cpu-ms-per-call-minute")
	b.ReportMetric(baseCores, "base-cpu-cores")
	b.ReportMetric(byMem, "calls-per-dyno-by-memory")
	b.ReportMetric(byCPU, "calls-per-dyno-by-cpu")
	b.ReportMetric(min(byMem, byCPU), "calls-per-dyno")
	b.Logf("per call: %.2f MiB RSS (%.2f MiB Go heap), %.1f goroutines, %.2f%% of a core; fixed: %.1f MiB RSS, %.3f cores",
		rssPerCall, heapPerCall, gorPerCall, corePerCall*100, baseRSS, baseCores)
	b.Logf("one standard-1x dyno: %.0f calls by memory (warn %d MiB), %.0f by CPU (warn %.0f%% of one core): %.0f",
		byMem, dynoWarnRSSMiB, byCPU, dynoWarnCPUCore*100, min(byMem, byCPU))
	if rssPerCall <= 0 || corePerCall <= 0 {
		b.Errorf("a per-call cost came out non-positive (RSS %.3f MiB, CPU %.4f cores): the levels are too noisy to fit", rssPerCall, corePerCall)
	}
}
