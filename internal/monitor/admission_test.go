package monitor

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

// fakeCall is a live call's audio counters, moved by the test.
type fakeCall struct {
	mu sync.Mutex
	c  AudioCounts
}

func (f *fakeCall) add(d AudioCounts) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c = f.c.add(d)
}

func (f *fakeCall) read() AudioCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c
}

type admissionRig struct {
	pressure *Pressure
	audio    *AudioMeter
	a        *Admission
	runQueue func() RunQueueSample // nil: quiet
}

// newAdmissionRig builds the duty without its loop: the test runs each
// look itself (periodic.Loop's schedule is tested on its own). The run
// queue reads quiet unless the test sets rig.runQueue.
func newAdmissionRig(t *testing.T, cpu func() (float64, float64, bool, error)) (*admissionRig, *observedLogs) {
	log, logs := observedAt(zapcore.InfoLevel) // not each look's debug line
	r := &admissionRig{pressure: NewPressure(log), audio: NewAudioMeter()}
	runQueue := func() (RunQueueSample, bool, error) {
		if r.runQueue == nil {
			return RunQueueSample{Run: 100 * time.Millisecond, Wall: time.Second}, true, nil
		}
		return r.runQueue(), true, nil
	}
	a, err := NewAdmission(AdmissionOptions{Logger: log, Pressure: r.pressure, Audio: r.audio, CPU: cpu, RunQueue: runQueue, NoProbe: true})
	require.NoError(t, err)
	r.a = a
	return r, &observedLogs{logs}
}

func (r *admissionRig) look() { r.a.look(context.Background()) }

// CPU at or over the warning level defers new calls at once; the level
// must be clearly left (hysteresis) for two looks in a row before calls
// are taken again.
func TestAdmissionByCPU(t *testing.T) {
	r, logs := newAdmissionRig(t, cpuSeq(50, 50, 50, 75, 75, 69, 69, 60, 60, 60, 60))
	var on []bool
	for range 11 {
		r.look()
		on = append(on, r.pressure.UnderPressure())
	}
	// 50 50 50 75 75 69 69 60 60 60 60: on at 75; 69 is between the
	// levels (under 70, not under 66.5); off at the second 60.
	require.Equal(t, []bool{false, false, false, true, true, true, true, true, false, false, false}, on)
	require.Equal(t, []string{"backpressure.on", "backpressure.off"}, logs.messages())
	ev := logs.events("backpressure.on")[0]
	require.Equal(t, PressureCPU, ev["pressure"])
	require.Equal(t, 75.0, ev["cpu_pct"])
	require.Equal(t, 70.0, ev["threshold_pct"])
}

// Live calls that miss their deadlines (agent frames late, callee audio
// dropped before the model) defer new calls; without a live call, bad
// figures are no reason (the probe alone judges nobody's call).
func TestAdmissionByAudioHealth(t *testing.T) {
	r, logs := newAdmissionRig(t, cpuSeq(10))
	call := &fakeCall{}
	bad := AudioCounts{Frames: 250, LateFrames: 20, InputChunks: 250}
	good := AudioCounts{Frames: 250, LateFrames: 1, InputChunks: 250}

	// The probe's frames are late, but no call is live: nobody to protect.
	r.a.probe = &pacingProbe{}
	r.look() // the baseline
	r.a.probe.frames, r.a.probe.lates = 250, 50
	r.look()
	require.False(t, r.pressure.UnderPressure())
	r.a.probe = nil
	r.a.primed = false
	r.look()

	done := r.audio.Track(call.read)
	call.add(bad)
	r.look()
	require.True(t, r.pressure.UnderPressure(), "8% of frames late")
	require.Equal(t, []string{PressureAudio}, r.pressure.Reasons())
	call.add(good)
	r.look()
	require.True(t, r.pressure.UnderPressure(), "two good looks needed")
	call.add(good)
	r.look()
	require.False(t, r.pressure.UnderPressure())

	call.add(AudioCounts{Frames: 250, InputChunks: 250, InputDropped: 5}) // 2% dropped
	r.look()
	require.True(t, r.pressure.UnderPressure())
	done()
	require.Equal(t, 0, r.audio.Live())
	r.look()
	r.look()
	require.False(t, r.pressure.UnderPressure(), "the call ended: no live call to protect")
	on := logs.events("backpressure.on")
	require.Len(t, on, 2)
	require.Equal(t, int64(20), on[0]["late_frames"])
	require.Equal(t, int64(1), on[0]["live_calls"])
	require.Equal(t, int64(5), on[1]["dropped_input_chunks"])
	require.Equal(t, AudioCounts{Frames: 1000, LateFrames: 22, InputChunks: 1000, InputDropped: 5}, r.audio.Counts(),
		"an ended call's counts are kept")
}

// A neighbour that takes our CPU shows as run-queue wait while our own
// CPU reads low: with a live call, waiting four times as long as running
// (and at least a quarter of the time) defers new calls; it lifts after
// two looks clearly under (half the ratio or half the share); and without
// a live call it is never a reason.
func TestAdmissionByRunQueueWait(t *testing.T) {
	r, logs := newAdmissionRig(t, cpuSeq(10))
	sample := func(run, wait time.Duration) RunQueueSample {
		return RunQueueSample{Run: run, Wait: wait, Wall: 5 * time.Second}
	}
	ms := time.Millisecond
	looks := []struct {
		run, wait time.Duration
		live      bool
		want      bool
	}{
		{run: 400 * ms, wait: 4 * time.Second, want: false},            // starved, but no call to protect
		{run: 400 * ms, wait: 4 * time.Second, live: true, want: true}, // 10× as long waiting
		{run: 500 * ms, wait: 1500 * ms, live: true, want: true},       // 3×: between the levels
		{run: 1000 * ms, wait: 1500 * ms, live: true, want: true},      // 1.5×: one good look
		{run: 1000 * ms, wait: 1500 * ms, live: true, want: false},     // two: lifted
		{run: 100 * ms, wait: time.Second, live: true, want: false},    // 10×, but a fifth of the time
		{run: 400 * ms, wait: 1600 * ms, live: true, want: true},       // 4× over 32% of the time
		{run: 50 * ms, wait: 600 * ms, live: true, want: true},         // 12× but 12% of the time: one good look
		{run: 50 * ms, wait: 600 * ms, live: true, want: false},        // two: lifted
		{run: 400 * ms, wait: 1600 * ms, live: true, want: true},       // on again
	}
	var done func()
	for i, l := range looks {
		if l.live && done == nil {
			done = r.audio.Track(func() AudioCounts { return AudioCounts{} })
		}
		r.runQueue = func() RunQueueSample { return sample(l.run, l.wait) }
		r.look()
		require.Equal(t, l.want, r.pressure.UnderPressure(), "look %d: ran %s, waited %s", i, l.run, l.wait)
	}
	done()
	require.Equal(t, []string{PressureCPUWait}, r.pressure.Reasons())
	on := logs.events("backpressure.on")
	require.Len(t, on, 3)
	require.Equal(t, PressureCPUWait, on[0]["pressure"])
	require.Equal(t, 10.0, on[0]["wait_ratio"])
	require.Equal(t, DefaultWaitRatio, on[0]["threshold_ratio"])
}

// The meter reads the real kernel: more busy threads than CPUs wait for
// each other, so the process's run-queue wait grows with its run time (at
// least half as much: a loaded machine only adds to it).
func TestRunQueueMeterSeesContention(t *testing.T) {
	m := NewRunQueueMeter(DefaultProcFS(), time.Now)
	if _, _, err := m.Sample(); err != nil {
		t.Skipf("no schedstat here: %v", err)
	}
	n := 2 * runtime.NumCPU()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n + 1))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := 0; ; x++ {
				if x%1024 == 0 {
					select {
					case <-stop:
						return
					default:
					}
				}
			}
		}()
	}
	var s RunQueueSample
	var ok bool
	var err error
	// Bounded: at most 50 samples of 20 ms of busy threads.
	for i := 0; i < 50 && s.Run < time.Duration(n)*200*time.Millisecond; i++ {
		time.Sleep(20 * time.Millisecond) // the load runs meanwhile: what is measured, not a wait for it
		var d RunQueueSample
		d, ok, err = m.Sample()
		require.NoError(t, err)
		require.True(t, ok)
		s = RunQueueSample{Run: s.Run + d.Run, Wait: s.Wait + d.Wait, Wall: s.Wall + d.Wall}
	}
	close(stop)
	wg.Wait()
	require.Greater(t, s.Run, time.Duration(0))
	require.GreaterOrEqual(t, s.WaitRatio(), 0.5, "%d busy threads on %d CPUs: ran %s, waited %s", n, runtime.NumCPU(), s.Run, s.Wait)
}

// RunQueueTimes sums every thread's schedstat and says what it cannot read.
func TestRunQueueTimesSumsThreads(t *testing.T) {
	dir := t.TempDir()
	write := func(tid, body string) {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "self", "task", tid), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "self", "task", tid, "schedstat"), []byte(body), 0o644))
	}
	fs := ProcFS{Proc: dir}
	_, _, _, err := fs.RunQueueTimes()
	require.ErrorContains(t, err, "no task schedstat")
	write("1", "3000000 1000000 12\n")
	write("7", "2000000 5000000 40\n")
	run, wait, slices, err := fs.RunQueueTimes()
	require.NoError(t, err)
	require.Equal(t, 5*time.Millisecond, run)
	require.Equal(t, 6*time.Millisecond, wait)
	require.Equal(t, int64(52), slices)
	write("9", "garbage\n")
	_, _, _, err = fs.RunQueueTimes()
	require.ErrorContains(t, err, "9/schedstat")
}

// Reasons add up: memory and CPU together defer, and the error names
// both; the episode ends when the last reason clears.
func TestPressureReasonsCombine(t *testing.T) {
	log, logs := observed()
	p := NewPressure(log)
	p.update(true, rssReading(460))
	p.set(PressureCPU, true)
	err := p.Middleware(tasks.TypeCallOutbound)(&countingHandler{}).ProcessTask(context.Background(), asynq.NewTask(tasks.TypeCallOutbound, nil))
	require.ErrorIs(t, err, ErrBackpressure)
	require.EqualError(t, err, "worker is under cpu and memory pressure: task deferred, not run")
	p.update(false, rssReading(300))
	require.True(t, p.UnderPressure())
	p.set(PressureCPU, false)
	require.False(t, p.UnderPressure())
	require.Equal(t, []string{"backpressure.on", "backpressure.reason_on", "backpressure.reason_off", "backpressure.off"}, messages(logs))
	require.Equal(t, int64(1), events(logs, "backpressure.off")[0]["deferrals"])
}

// The probe keeps pace on its own goroutine, as a player does.
func TestPacingProbeCountsFrames(t *testing.T) {
	p := startPacingProbe()
	defer p.shutdown()
	require.Eventually(t, func() bool { return p.counts().Frames >= 10 }, 10*time.Second, 5*time.Millisecond)
}
