package monitor

import (
	"context"
	"errors"
	"time"

	"github.com/docshield/voice-worker/internal/periodic"
	"go.uber.org/zap"
)

// Admission defaults.
const (
	DefaultAdmissionInterval = 5 * time.Second
	// DefaultLateFramesPct: live calls whose agent frames go out so late
	// the callee hears a gap, 2 in 100 or more, are not well served.
	DefaultLateFramesPct = 2.0
	// DefaultDroppedInputPct: callee audio dropped before the model, 1 in
	// 100 chunks or more, and the model misses what was said.
	DefaultDroppedInputPct = 1.0
	// DefaultClearAfter is how many good looks in a row lift a reason: a
	// machine that recovers for one look may not have recovered.
	DefaultClearAfter = 2
	// minAudioSample is the fewest frames or chunks a look judges on (a
	// second of one call's audio).
	minAudioSample = 50
	// DefaultWaitRatio: threads that wait in the run queue four times as
	// long as they run get every piece of work done in five times the time
	// it needs; past that a neighbour has our CPU, whatever our own CPU
	// reads. The level sits well clear of a worker that merely shares its
	// machine, whose threads always wait a little for each wake-up:
	// measured on a 2-core machine that also ran LiveKit and the
	// simulators, 0.5-0.6 with 40 calls, 0.9-1.3 with 2 calls (peaks at a
	// call's start and end), against 11-16 with 2 calls beside 16 busy
	// loops. At 1, the first level, a quiet machine's own peaks turned it
	// on, and it never lifted (see minWaitShare).
	DefaultWaitRatio = 4.0
	// minWaitShare is the least run-queue wait a look judges on, per
	// second of wall time: a near idle process that waited 2 ms to run
	// 1 ms was not starved of anything a call needs. Lifting takes half of
	// it (or half the ratio), so it sits well above what a machine without
	// a CPU neighbour shows: 0.02-0.16 measured as above, against 0.6-0.9
	// under the busy loops. At 0.1 a quiet machine's 0.08-0.09 never fell
	// under the 0.05 that lifts it.
	minWaitShare = 0.25
)

// AdmissionOptions configure an Admission. Pressure is required.
type AdmissionOptions struct {
	Logger   *zap.Logger
	Pressure *Pressure
	// Audio holds the live calls' counts; nil: a meter of its own, which
	// counts no call.
	Audio *AudioMeter
	// CPU samples this process's CPU; nil: NewCPUMeter on /proc.
	CPU func() (pct, limit float64, ok bool, err error)
	// CPUWarnPct is the CPU warning level (ALERT_CPU_WARN_PCT); 0: 70.
	CPUWarnPct float64
	// LateFramesPct and DroppedInputPct are the audio limits; 0: the
	// defaults.
	LateFramesPct, DroppedInputPct float64
	// RunQueue samples how long this process's threads ran and waited for
	// a CPU; nil: NewRunQueueMeter on /proc.
	RunQueue func() (RunQueueSample, bool, error)
	// WaitRatio is the run-queue limit: waiting this many times as long
	// as running (with at least a tenth of the wall time waited); 0:
	// DefaultWaitRatio. NoRunQueue judges no run-queue wait at all.
	WaitRatio  float64
	NoRunQueue bool
	// Hysteresis is the fraction of the CPU level a value must fall below
	// it to count as good; 0: the thresholds' default (0.05).
	Hysteresis float64
	// Every is the look's interval; 0: DefaultAdmissionInterval.
	Every time.Duration
	// ClearAfter good looks in a row lift a reason; 0: DefaultClearAfter.
	ClearAfter int
	// NoProbe runs no pacing probe: only the calls' own counts are judged
	// (tests).
	NoProbe bool
	// NewTicker is a seam for tests.
	NewTicker func(every time.Duration) Ticker
}

// Admission decides whether this worker takes new calls, beside memory:
// not while its CPU is at or above the warning level, nor, while it has
// live calls, when they miss their audio deadlines (the agent's frames
// late enough for the callee to hear a gap, callee audio dropped before
// the model) or its threads wait for a CPU longer than they run on one. A
// dyno shares its CPU with neighbours, and a worker using a third of a
// core can still starve: the run-queue wait says so first, the deadlines
// once calls suffer. A dyno with no live call is never refused for
// starvation alone: it has no call to protect, and a fleet whose every
// host is busy must still take calls. A reason goes on at the
// first bad look, since a starving call degrades at once, and off after
// ClearAfter good looks in a row, so a worker does not flap between taking
// calls and refusing them. Calls already running are never touched: the
// point is that they keep their quality.
//
// It is one goroutine (a periodic.Loop) and, unless NoProbe, a pacing
// probe (see pacingProbe). Start once; Shutdown stops both.
type Admission struct {
	// Immutable after NewAdmission.
	o     AdmissionOptions
	loop  *periodic.Loop
	probe *pacingProbe // nil with NoProbe; started by Start

	// Confined to the loop's goroutine.
	prev      AudioCounts // the calls' counts at the last look
	prevProbe AudioCounts // the probe's
	primed    bool
	cpuOn     bool
	cpuGood   int // good looks in a row while on
	audioOn   bool
	audioGood int
	waitOn    bool
	waitGood  int
}

// NewAdmission checks o and builds the duty without starting it.
func NewAdmission(o AdmissionOptions) (*Admission, error) {
	if o.Pressure == nil {
		return nil, errors.New("monitor: AdmissionOptions.Pressure is required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Audio == nil {
		o.Audio = NewAudioMeter()
	}
	if o.CPU == nil {
		o.CPU = NewCPUMeter(DefaultProcFS(), time.Now).Sample
	}
	if o.CPUWarnPct <= 0 {
		o.CPUWarnPct = DefaultThresholds().CPUPercent.Warning
	}
	if o.LateFramesPct <= 0 {
		o.LateFramesPct = DefaultLateFramesPct
	}
	if o.DroppedInputPct <= 0 {
		o.DroppedInputPct = DefaultDroppedInputPct
	}
	if o.RunQueue == nil {
		o.RunQueue = NewRunQueueMeter(DefaultProcFS(), time.Now).Sample
	}
	if o.WaitRatio <= 0 {
		o.WaitRatio = DefaultWaitRatio
	}
	if o.Hysteresis <= 0 {
		o.Hysteresis = DefaultThresholds().Hysteresis
	}
	if o.Every <= 0 {
		o.Every = DefaultAdmissionInterval
	}
	if o.ClearAfter <= 0 {
		o.ClearAfter = DefaultClearAfter
	}
	a := &Admission{o: o}
	a.loop = periodic.New(periodic.Options{Every: o.Every, Run: a.look, NewTicker: o.NewTicker})
	return a, nil
}

// Start starts the probe and looks now and then every interval.
func (a *Admission) Start() {
	if !a.o.NoProbe {
		a.probe = startPacingProbe()
	}
	a.loop.Start()
}

// Shutdown stops the looks and the probe.
func (a *Admission) Shutdown() {
	a.loop.Shutdown()
	if a.probe != nil {
		a.probe.shutdown()
	}
}

// counts is the calls' counts plus the probe's.
// counts are the live calls' counts and the probe's, apart: each is judged
// on its own, so the frames of calls whose players kept up do not dilute
// the probe's late frames, nor the probe's a call's stalls.
func (a *Admission) counts() (calls, probe AudioCounts) {
	calls = a.o.Audio.Counts()
	if a.probe != nil {
		probe = a.probe.counts()
	}
	return calls, probe
}

func (a *Admission) look(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	a.lookCPU()
	a.lookAudio()
	a.lookRunQueue()
}

func (a *Admission) lookCPU() {
	pct, _, ok, err := a.o.CPU()
	if err != nil || !ok {
		return // no figure: nothing to judge, nothing changes
	}
	warn := a.o.CPUWarnPct
	bad, good := pct >= warn, pct < warn*(1-a.o.Hysteresis)
	a.cpuOn, a.cpuGood = a.judge(PressureCPU, a.cpuOn, a.cpuGood, bad, good,
		zap.Float64("cpu_pct", round2(pct)), zap.Float64("threshold_pct", warn))
}

func (a *Admission) lookAudio() {
	calls, probe := a.counts()
	dc, dp := calls.sub(a.prev), probe.sub(a.prevProbe)
	a.prev, a.prevProbe = calls, probe
	if !a.primed {
		a.primed = true
		return
	}
	d := dc.add(dp) // for the log line
	live := a.o.Audio.Live()
	bad := false
	if live > 0 { // nobody to protect: the probe alone is not a reason
		late := max(pct(dp.LateFrames, dp.Frames), pct(dc.LateFrames, dc.Frames))
		bad = late >= a.o.LateFramesPct || pct(d.InputDropped, d.InputChunks) >= a.o.DroppedInputPct
	}
	a.audioOn, a.audioGood = a.judge(PressureAudio, a.audioOn, a.audioGood, bad, !bad,
		zap.Int("live_calls", live),
		zap.Int64("late_frames", d.LateFrames), zap.Int64("frames", d.Frames),
		zap.Int64("dropped_input_chunks", d.InputDropped), zap.Int64("input_chunks", d.InputChunks))
}

func (a *Admission) lookRunQueue() {
	if a.o.NoRunQueue {
		return
	}
	s, ok, err := a.o.RunQueue()
	if err != nil || !ok {
		return // no figure (a kernel without schedstats): nothing changes
	}
	live := a.o.Audio.Live()
	share, ratio, limit := s.WaitShare(), s.WaitRatio(), a.o.WaitRatio
	a.o.Logger.Debug("admission.run_queue", zap.Int("live_calls", live), zap.Float64("wait_ratio", round2(ratio)),
		zap.Float64("wait_share", round2(share)), zap.Duration("run_queue_wait", s.Wait), zap.Duration("ran", s.Run),
		zap.Int64("slices", s.Slices), zap.Duration("wait_per_slice", s.WaitPerSlice()))
	bad := live > 0 && share >= minWaitShare && ratio >= limit
	good := share < minWaitShare/2 || ratio < limit/2 || live == 0
	a.waitOn, a.waitGood = a.judge(PressureCPUWait, a.waitOn, a.waitGood, bad, good,
		zap.Int("live_calls", live), zap.Float64("wait_ratio", round2(ratio)), zap.Float64("threshold_ratio", limit),
		zap.Duration("run_queue_wait", s.Wait), zap.Duration("ran", s.Run), zap.Duration("over", s.Wall))
}

// judge moves one reason: on at a bad look, off after ClearAfter good
// ones in a row.
func (a *Admission) judge(reason string, on bool, goodRun int, bad, good bool, fields ...zap.Field) (bool, int) {
	switch {
	case bad:
		goodRun = 0
		if !on {
			on = true
			a.o.Pressure.set(reason, true, fields...)
		}
	case on && good:
		if goodRun++; goodRun >= a.o.ClearAfter {
			on, goodRun = false, 0
			a.o.Pressure.set(reason, false, fields...)
		}
	default:
		goodRun = 0 // between the levels: neither clearly bad nor good
	}
	return on, goodRun
}

// pct is part of whole in percent, 0 when whole is too small a sample.
func pct(part, whole int64) float64 {
	if whole < minAudioSample {
		return 0
	}
	return float64(part) * 100 / float64(whole)
}
