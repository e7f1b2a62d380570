package call_test

import (
	"cmp"
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
	"github.com/docshield/voice-worker/internal/config"
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
	"golang.org/x/sys/unix"
)

// How many concurrent calls one worker process holds on a Heroku
// standard-1x dyno (512 MB, warned at 450 MB RSS; one CPU, warned at 70%),
// what each call costs, and how the calls fare as they are added.
//
// Each level places N calls at once (started 150 ms apart) through the
// real Handler and Runner, with the daemon's recorder (Ogg Opus streamed
// to the devstack's MinIO, segments noted in FerretDB), its MongoDB pool
// (config.MongoPoolFor the largest level), real LiveKit rooms and Opus
// legs, and the realtime client talking to the realtime simulator paced in
// real time. A call lasts about 30 s: the agent's greeting, then four
// exchanges of a spoken callee line (espeak-ng) and an agent reply, the
// third line talking over the reply before it (a barge-in); then the callee
// hangs up. Audio flows both ways all along (50 frames a second each way,
// silence between turns), and the first 30-s recording segment is stored
// mid-call.
//
// The simulators run in a child process (capacity_helpers_test.go), so this
// process holds what a worker holds: agent seats, realtime clients,
// recorders, store and storage clients. The child runs at a lower priority
// (nice 10): on a machine short of CPU (2 cores: the worker, the
// simulators and LiveKit each want most of one at 40 calls) the kernel
// gives the worker what it asks for first, and the simulators wait. The
// callee's figures (heard by the simulated callee) then include the
// simulators' own waiting; the worker's figures do not.
//
// The process measures itself with the readers the worker's health
// monitor uses: the peak RSS of each level (VmHWM, reset per level), Go
// heap in use and goroutines while all N calls are live, and CPU time
// (utime+stime) over that steady window, less the sampler's own (it reads
// /proc for this process, the child and the stack ten times a second, on
// a thread of its own whose CPU clock it reads). Per level:
//
//	cpu-ms-per-call-minute  the steady window's CPU over its call-minutes:
//	                        all-in, what a dyno must have per call
//	reply-p50/p95-ms        callee line's end to the agent's reply heard,
//	                        less the simulator's think time and VAD window
//	worker-reply-p95-ms     the worker's own reply latency (call document)
//	barge-in-p95-ms         callee's first word over the agent to the
//	                        agent's last audio heard (includes the model
//	                        VAD's 60 ms and the media path)
//	greeting-p95-ms         the answer to the greeting's first audio heard
//	                        (includes the simulated model's 300 ms)
//	loadavg-1m              the machine's load when the level ended
//
// and for the dyno (the "dyno" line):
//
//	calls-per-dyno-by-cpu    = floor(0.7 core / all-in cpu-per-call at 20 calls)
//	calls-per-dyno-by-memory = floor((450 MiB - base-rss) / rss-per-call),
//	                           RSS fitted across the levels
//	calls-per-dyno           = the smaller
//
// The CPU figure is the all-in one at 20 calls, not a slope across levels:
// the slope is unstable (the cost per call falls as calls are added, the
// per-frame wake-ups of a nearly idle process costing more), and 20 calls
// is where the dyno's budget is spent. A level where the machine was 90%
// busy or the agent's player skipped frames is flagged: there the worker
// got less CPU than it asked for.
//
// The 1-call level is the baseline: its call is placed 8 times, one after
// another (see capacityLoneCalls).
//
//	make bench   (CALL_CAPACITY_LEVELS=1,10,20,30,40 by default, about 6 minutes)
//	devstack exec -- go test -run '^$' -bench CallCapacity -benchtime 1x ./internal/call/
//	CALL_CAPACITY_SIM_CPUPROFILE=file profiles the simulators
//	CALL_CAPACITY_SIM_NICE=n runs them at niceness n (default 10; 0: the
//	                        worker's own priority)
//	CALL_CAPACITY_LONE_CALLS=n places the 1-call level's call n times (default 8)

const (
	capacityLevelsEnv    = "CALL_CAPACITY_LEVELS"
	capacityDefaultLevel = "1,10,20,30,40" // about 6 minutes together
	capacityCPULevel     = 20              // whose CPU per call sizes the dyno
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
	loneCalls := capacityLoneCalls(b)
	e := newCapacityEnv(b, slices.Max(levels))
	var measured []levelResult
	for _, n := range levels {
		b.Run("calls="+strconv.Itoa(n), func(b *testing.B) {
			var runs []levelResult
			for range b.N {
				r := e.runLevel(b, n)
				if n == 1 {
					for range loneCalls - 1 {
						r.pool(e.runLevel(b, n))
					}
				}
				runs = append(runs, r)
			}
			measured = append(measured, runs...)
			runs[len(runs)-1].report(b)
		})
	}
	b.Run("dyno", func(b *testing.B) { reportDyno(b, measured) })
}

func capacityLevels(b *testing.B) []int {
	return parseLevels(b, capacityLevelsEnv, capacityDefaultLevel)
}

// capacityLoneCalls places the 1-call level's call this many times, one
// after another, and pools their latencies: the baseline every other
// level's reply p95 is held against. One call's replies are not
// independent samples. Its frame grids (the callee's 20 ms frames, the
// 40 ms batches to the model, the pacer's 20 ms ticks) keep one alignment
// for the whole call, so its four replies come out within a few ms of one
// another: reply p50 and p95 of a lone call were equal to within 20 ms in
// every run, and moved between -14 and +22 ms from run to run. A level of
// 10 or more calls samples many alignments; so must the baseline.
const (
	capacityLoneCallsEnv     = "CALL_CAPACITY_LONE_CALLS"
	capacityDefaultLoneCalls = 8
)

func capacityLoneCalls(b *testing.B) int {
	v := os.Getenv(capacityLoneCallsEnv)
	if v == "" {
		return capacityDefaultLoneCalls
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 50 {
		b.Fatalf("%s=%q: want a count of calls between 1 and 50", capacityLoneCallsEnv, v)
	}
	return n
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
	stack   []stackServer // the local stack's processes (devstack's holds FerretDB)
	prefix  string
	seq     int
	harness time.Duration // the sampler's own CPU so far; see procSample
	// live counts answered calls whose line is still up.
	live atomic.Int64
}

func newCapacityEnv(b *testing.B, maxCalls int) *capacityEnv {
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
		st: openStoreWithPool(b, config.MongoPoolFor(maxCalls)), s3: s3, log: log, net: startPhoneNetwork(b),
		self: monitor.DefaultProcFS(), stack: stackProcs(b),
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
	sim        time.Duration   // the child's CPU time
	stack      time.Duration   // the local stack's CPU time
	stackEach  []time.Duration // each of e.stack's, in its order; -1: not read
	// This process's threads' schedstat sums (monitor.RunQueueTimes): what
	// the admission's cpu_wait reason reads.
	rqRun, rqWait time.Duration
	rqSlices      int64
	machine       time.Duration // every process's CPU time
	// harness is the CPU the sampler itself has spent so far (reading
	// /proc for this process, the child and the stack, 10 times a
	// second): the benchmark's cost, not the worker's, so it is taken
	// out of cpu's figures.
	harness time.Duration
}

func (e *capacityEnv) sample() procSample {
	start := threadCPU()
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(m)
	s := procSample{at: time.Now(), heap: m[0].Value.Uint64(), goroutines: runtime.NumGoroutine(), live: e.live.Load()}
	s.cpu, _ = e.self.CPUTime()
	s.rqRun, s.rqWait, s.rqSlices, _ = e.self.RunQueueTimes()
	s.rss, _ = e.self.RSSBytes()
	s.sim, _ = e.net.proc.CPUTime()
	s.stackEach = make([]time.Duration, len(e.stack))
	for i, p := range e.stack {
		t, err := p.proc.CPUTime()
		if err != nil {
			s.stackEach[i] = -1 // gone
			continue
		}
		s.stack += t
		s.stackEach[i] = t
	}
	s.machine, _ = machineBusy()
	e.harness += threadCPU() - start
	s.harness = e.harness
	return s
}

// workerCPU is the process's CPU time from a to b, less the sampler's.
func workerCPU(a, b procSample) time.Duration {
	return (b.cpu - a.cpu) - (b.harness - a.harness)
}

// threadCPU is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
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
	stackCores            float64 // LiveKit, FerretDB, MinIO, Redis
	stackSplit            string  // stackCores by process
	runQueue              monitor.RunQueueSample
	samplerCores          float64       // the sampler's own, left out of cores
	allInCPUPerCallMinute time.Duration // the level's CPU over its call-minutes
	// workerReply: the worker's own reply latency (the call document's,
	// less the simulator's delay). heard: at the callee, less the
	// simulator's delay and VAD window; it still holds the media path and
	// the detectors' frame grid, so its growth across levels is the point.
	workerReply, heard     []time.Duration
	continuity             []float64 // per call, see calleeResult
	greeting, bargeIn      []time.Duration
	bargeInMissed          int
	callMinutes, levelSecs float64
	recordingBytes         int64
	loadavg                float64 // the machine's 1-minute load when the level ended
	runs                   int     // the runs pooled into the latencies, less one
}

// pool adds another run's calls to r's latencies and failures. r keeps
// its own CPU and memory figures: they are one run's, as every level's.
func (r *levelResult) pool(o levelResult) {
	r.failures = append(r.failures, o.failures...)
	r.workerReply = append(r.workerReply, o.workerReply...)
	r.heard = append(r.heard, o.heard...)
	r.continuity = append(r.continuity, o.continuity...)
	r.greeting = append(r.greeting, o.greeting...)
	r.bargeIn = append(r.bargeIn, o.bargeIn...)
	r.bargeInMissed += o.bargeInMissed
	r.runs++
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

	r := levelResult{n: n, peakRSS: peak, levelSecs: ss[len(ss)-1].at.Sub(ss[0].at).Seconds(), loadavg: loadAverage()}
	for i, id := range ids {
		r.check(ctx, b, e, id, errs[i])
	}
	r.steadyFigures(ss, e.stack)
	if r.steady < 5*time.Second {
		r.failures = append(r.failures, fmt.Sprintf("all %d calls were live together for only %s", n, r.steady))
	}
	cpu := workerCPU(ss[0], ss[len(ss)-1])
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
	r.recordingBytes += c.Recording.Bytes
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
		r.heard = append(r.heard, msDuration(ms-capacityDelayMS-capacitySilenceMS))
	}
	r.greeting = append(r.greeting, msDuration(heard.GreetingMS))
	if heard.BargeInMS == nil {
		// The agent's reply came late, or its audio broke up where the
		// callee spoke: no barge-in to measure (logged, not a failure).
		r.bargeInMissed++
	} else {
		r.bargeIn = append(r.bargeIn, msDuration(*heard.BargeInMS))
	}
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// startSampler samples the process every capacitySample until stop, which
// returns the samples (a first and a last one included).
func (e *capacityEnv) startSampler() func() []procSample {
	quit, done := make(chan struct{}), make(chan struct{})
	var out []procSample
	go func() {
		defer close(done)
		// On one thread, so that thread's CPU clock is the sampler's.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
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
func (r *levelResult) steadyFigures(ss []procSample, stack []stackServer) {
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
	r.cores = workerCPU(first, last).Seconds() / secs
	r.simCores = (last.sim - first.sim).Seconds() / secs
	r.stackCores = (last.stack - first.stack).Seconds() / secs
	r.stackSplit = stackSplit(stack, first.stackEach, last.stackEach, secs)
	r.runQueue = monitor.RunQueueSample{Run: last.rqRun - first.rqRun, Wait: last.rqWait - first.rqWait,
		Slices: last.rqSlices - first.rqSlices, Wall: r.steady}
	r.samplerCores = (last.harness - first.harness).Seconds() / secs
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

// stackSplit names the stack's cores between two samples by command
// (PostgreSQL's backends summed under "postgres"), busiest first: which
// part of the local stack a level loaded. A process that was not read at
// both ends counts nothing.
func stackSplit(stack []stackServer, from, to []time.Duration, secs float64) string {
	type share struct {
		name  string
		cores float64
	}
	var shares []share
	for i, p := range stack {
		if i >= len(from) || i >= len(to) || from[i] < 0 || to[i] < 0 {
			continue
		}
		c := (to[i] - from[i]).Seconds() / secs
		if j := slices.IndexFunc(shares, func(s share) bool { return s.name == p.name }); j >= 0 {
			shares[j].cores += c
		} else {
			shares = append(shares, share{p.name, c})
		}
	}
	slices.SortFunc(shares, func(a, b share) int { return cmp.Compare(b.cores, a.cores) })
	parts := make([]string, len(shares))
	for i, s := range shares {
		parts[i] = fmt.Sprintf("%s %.3f", s.name, s.cores)
	}
	return strings.Join(parts, ", ")
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
	b.ReportMetric(r.stackCores, "stack-cpu-cores")
	b.ReportMetric(r.busy, "machine-busy-cores")
	b.ReportMetric(r.loadavg, "loadavg-1m")
	b.ReportMetric(r.runQueue.WaitRatio(), "runq-wait-ratio")
	b.ReportMetric(r.runQueue.WaitShare(), "runq-wait-share")
	if r.callMinutes > 0 {
		b.ReportMetric(float64(r.recordingBytes)/1024/r.callMinutes, "recording-KiB-per-call-minute")
	}
	if len(r.workerReply) > 0 {
		b.ReportMetric(millis(percentile(r.workerReply, 95)), "worker-reply-p95-ms")
	}
	if len(r.continuity) > 0 {
		b.ReportMetric(slices.Min(r.continuity)*100, "agent-audio-min-%")
	}
	for _, f := range []struct {
		name string
		ds   []time.Duration
		ps   []int
	}{{"reply", r.heard, []int{50, 95}}, {"barge-in", r.bargeIn, []int{95}}, {"greeting", r.greeting, []int{95}}} {
		for _, p := range f.ps {
			if len(f.ds) > 0 {
				b.ReportMetric(millis(percentile(f.ds, p)), fmt.Sprintf("%s-p%d-ms", f.name, p))
			}
		}
	}
	b.Logf("%d calls: steady %.1fs of %.1fs, %.2f call-minutes; peak RSS %.1f MiB, steady RSS %.1f MiB, heap %.1f MiB, %d goroutines; "+
		"worker %.3f cores (its sampler's %.3f left out), simulators %.3f, local stack %.3f (%s), whole machine %.2f of %d (other work %.2f), load average %.2f; "+
		"the worker's threads waited for a CPU %.2f times as long as they ran, %.2f of the time, %s per turn on a CPU",
		r.n, r.steady.Seconds(), r.levelSecs, r.callMinutes, float64(r.peakRSS)/capacityMiB, float64(r.steadyRSS)/capacityMiB, float64(r.heap)/capacityMiB,
		r.goroutines, r.cores, r.samplerCores, r.simCores, r.stackCores, r.stackSplit, r.busy, runtime.NumCPU(), max(0, r.busy-r.cores-r.samplerCores-r.simCores-r.stackCores), r.loadavg,
		r.runQueue.WaitRatio(), r.runQueue.WaitShare(), r.runQueue.WaitPerSlice().Round(time.Microsecond))
	if r.runs > 0 {
		b.Logf("%d calls placed %d times, one after another: latencies pooled (%d replies), CPU and memory from the first (%s)",
			r.n, r.runs+1, len(r.heard), capacityLoneCallsEnv)
	}
	if why := r.starved(); why != "" {
		b.Logf("CPU starved: %s; the CPU figures of this level understate the worker's need", why)
	}
	if r.bargeInMissed > 0 {
		b.Logf("%d of %d calls had no barge-in to measure: the agent was not heard talking when the callee spoke over it", r.bargeInMissed, r.n)
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

// reportDyno sizes the dyno: CPU from the all-in cost per call at
// capacityCPULevel calls, memory from RSS fitted across the levels with no
// failed call (the slope is the per-call cost, the intercept the process's
// fixed cost). It also prints the levels side by side.
func reportDyno(b *testing.B, levels []levelResult) {
	b.ReportMetric(0, "ns/op")
	logLevels(b, levels)
	var ns, rss, heap, gor []float64
	for _, r := range levels {
		if len(r.failures) > 0 {
			b.Logf("left out of the memory fit: %d calls (%d failed)", r.n, len(r.failures))
			continue
		}
		ns = append(ns, float64(r.n))
		rss = append(rss, float64(r.peakRSS)/capacityMiB)
		heap = append(heap, float64(r.heap)/capacityMiB)
		gor = append(gor, float64(r.goroutines))
	}
	cpu, ok := cpuLevel(levels)
	if !ok || distinctCount(ns) < 2 {
		b.Skipf("the dyno figures need a level of %d calls without failed calls, and two levels for memory", capacityCPULevel)
	}
	rssPerCall, baseRSS := fitLine(ns, rss)
	heapPerCall, _ := fitLine(ns, heap)
	gorPerCall, _ := fitLine(ns, gor)
	// All-in: the level's CPU over its call-minutes, setup and teardown
	// included, what a dyno must have per call; the steady window's is
	// logged beside it.
	steadyPerCall := cpu.cores / float64(cpu.n)
	corePerCall := cpu.allInCPUPerCallMinute.Seconds() / 60
	byMem := math.Floor((dynoWarnRSSMiB - baseRSS) / rssPerCall)
	byCPU := math.Floor(dynoWarnCPUCore / corePerCall)
	b.ReportMetric(rssPerCall, "rss-MiB-per-call")
	b.ReportMetric(baseRSS, "base-rss-MiB")
	b.ReportMetric(heapPerCall, "heap-MiB-per-call")
	b.ReportMetric(gorPerCall, "goroutines-per-call")
	b.ReportMetric(corePerCall*60000, "cpu-ms-per-call-minute")
	b.ReportMetric(byMem, "calls-per-dyno-by-memory")
	b.ReportMetric(byCPU, "calls-per-dyno-by-cpu")
	b.ReportMetric(min(byMem, byCPU), "calls-per-dyno")
	b.Logf("per call: %.2f MiB RSS (%.2f MiB Go heap), %.1f goroutines, %.0f ms CPU per call-minute all-in at %d calls (%.2f%% of a core; %.0f ms in the steady window); fixed: %.1f MiB RSS",
		rssPerCall, heapPerCall, gorPerCall, corePerCall*60000, cpu.n, corePerCall*100, steadyPerCall*60000, baseRSS)
	if why := cpu.starved(); why != "" {
		b.Logf("CPU starved at %d calls (%s): the CPU per call understates the worker's need", cpu.n, why)
	}
	b.Logf("one standard-1x dyno: %.0f calls by memory (warn %d MiB), %.0f by CPU (warn %.0f%% of one core): WORKER_CONCURRENCY=%.0f",
		byMem, dynoWarnRSSMiB, byCPU, dynoWarnCPUCore*100, min(byMem, byCPU))
	if rssPerCall <= 0 {
		b.Errorf("RSS per call came out non-positive (%.3f MiB): the levels are too noisy to fit", rssPerCall)
	}
}

// cpuLevel is the level whose CPU sizes the dyno.
func cpuLevel(levels []levelResult) (levelResult, bool) {
	for _, r := range slices.Backward(levels) {
		if r.n == capacityCPULevel && len(r.failures) == 0 && r.cores > 0 {
			return r, true
		}
	}
	return levelResult{}, false
}

// logLevels prints the levels side by side, and how the largest compares
// with one call.
func logLevels(b *testing.B, levels []levelResult) {
	p := func(ds []time.Duration, q int) string {
		if len(ds) == 0 {
			return "-"
		}
		return strconv.Itoa(int(percentile(ds, q).Milliseconds()))
	}
	b.Logf("%5s %6s %10s %10s %11s %12s %10s %12s %8s %6s", "calls", "failed", "reply p50", "reply p95", "barge-in p95",
		"greeting p95", "CPU ms/min", "machine busy", "load 1m", "RSS")
	for _, r := range levels {
		b.Logf("%5d %6d %10s %10s %11s %12s %10.0f %12.2f %8.2f %6.0f", r.n, len(r.failures), p(r.heard, 50), p(r.heard, 95),
			p(r.bargeIn, 95), p(r.greeting, 95), r.cores/float64(r.n)*60000, r.busy, r.loadavg, float64(r.peakRSS)/capacityMiB)
	}
	first, last := levels[0], levels[len(levels)-1]
	if len(levels) > 1 && len(first.heard) > 0 && len(last.heard) > 0 {
		growth := percentile(last.heard, 95) - percentile(first.heard, 95)
		b.ReportMetric(millis(growth), "reply-p95-growth-ms")
		b.Logf("reply p95 at %d calls is %v %s than at %d (target: within 20 ms); answer to greeting p95 at %d calls: %s ms (target: under 500, of which the simulated model takes %d)",
			last.n, growth.Abs().Round(time.Millisecond), map[bool]string{true: "more", false: "less"}[growth >= 0], first.n, last.n, p(last.greeting, 95), capacityDelayMS)
	}
}

// loadAverage is the machine's 1-minute load average; 0 if unreadable.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
