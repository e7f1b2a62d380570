package monitor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
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
}

// newAdmissionRig builds the duty without its loop: the test runs each
// look itself (periodic.Loop's schedule is tested on its own).
func newAdmissionRig(t *testing.T, cpu func() (float64, float64, bool, error)) (*admissionRig, *observedLogs) {
	log, logs := observed()
	r := &admissionRig{pressure: NewPressure(log), audio: NewAudioMeter()}
	a, err := NewAdmission(AdmissionOptions{Logger: log, Pressure: r.pressure, Audio: r.audio, CPU: cpu, NoProbe: true})
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
