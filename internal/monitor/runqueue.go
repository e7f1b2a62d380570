package monitor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// RunQueueTimes is how long this process's threads have run on a CPU, how
// long they have waited for one while runnable, and how many times they
// were put on one, so far: the sums of the three fields of every thread's
// /proc/self/task/<tid>/schedstat (nanoseconds, nanoseconds, a count; the
// kernel keeps them with CONFIG_SCHED_INFO, which every distribution
// kernel has). Waiting is what a CPU neighbour costs us: our own CPU reads
// low while our work sits in the run queue.
func (fs ProcFS) RunQueueTimes() (run, wait time.Duration, slices int64, err error) {
	paths, err := filepath.Glob(filepath.Join(fs.Proc, "self", "task", "*", "schedstat"))
	if err != nil {
		return 0, 0, 0, err
	}
	if len(paths) == 0 {
		return 0, 0, 0, fmt.Errorf("%s: no task schedstat (kernel without schedstats)", filepath.Join(fs.Proc, "self", "task"))
	}
	read := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited since the glob
		}
		if err != nil {
			return 0, 0, 0, err
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			return 0, 0, 0, fmt.Errorf("%s: %d fields, want 3", p, len(f))
		}
		r, err1 := strconv.ParseInt(f[0], 10, 64)
		w, err2 := strconv.ParseInt(f[1], 10, 64)
		n, err3 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return 0, 0, 0, fmt.Errorf("%s: %w", p, err)
		}
		run, wait, slices, read = run+time.Duration(r), wait+time.Duration(w), slices+n, read+1
	}
	if read == 0 {
		return 0, 0, 0, errors.New("monitor: every thread exited while its schedstat was read")
	}
	return run, wait, slices, nil
}

// RunQueueSample is what the process's threads did over Wall: ran on a CPU
// for Run, in Slices turns, and waited in a run queue for Wait (all summed
// over threads).
type RunQueueSample struct {
	Run, Wait, Wall time.Duration
	Slices          int64
}

// WaitPerSlice is how long a thread that became runnable waited, on
// average, before it ran: the scheduling delay every piece of a call's
// work (a frame, a socket read) pays.
func (s RunQueueSample) WaitPerSlice() time.Duration {
	if s.Slices <= 0 {
		return 0
	}
	return s.Wait / time.Duration(s.Slices)
}

// WaitShare is Wait per second of Wall.
func (s RunQueueSample) WaitShare() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return float64(s.Wait) / float64(s.Wall)
}

// WaitRatio is Wait per unit of Run: 1 means the threads waited for a
// CPU as long as they ran on one, so every piece of work took twice as
// long to get done as it needed.
func (s RunQueueSample) WaitRatio() float64 {
	if s.Run <= 0 {
		return 0
	}
	return float64(s.Wait) / float64(s.Run)
}

// RunQueueMeter turns RunQueueTimes into samples between calls.
type RunQueueMeter struct {
	fs  ProcFS
	now func() time.Time

	// Confined to Sample's caller (the admission loop).
	primed          bool
	lastRun, lastWt time.Duration
	lastSlices      int64
	lastAt          time.Time
}

// NewRunQueueMeter reads fs's process.
func NewRunQueueMeter(fs ProcFS, now func() time.Time) *RunQueueMeter {
	return &RunQueueMeter{fs: fs, now: now}
}

// Sample returns what happened since the previous call. ok is false on the
// first call, and when the sums went backwards (a thread that exited took
// its counts with it): there is nothing sound to compare with yet.
func (m *RunQueueMeter) Sample() (s RunQueueSample, ok bool, err error) {
	run, wait, slices, err := m.fs.RunQueueTimes()
	if err != nil {
		m.primed = false
		return s, false, err
	}
	at := m.now()
	prevRun, prevWait, prevSlices, prevAt, primed := m.lastRun, m.lastWt, m.lastSlices, m.lastAt, m.primed
	m.lastRun, m.lastWt, m.lastSlices, m.lastAt, m.primed = run, wait, slices, at, true
	s = RunQueueSample{Run: run - prevRun, Wait: wait - prevWait, Wall: at.Sub(prevAt), Slices: slices - prevSlices}
	if !primed || s.Wall <= 0 || s.Run < 0 || s.Wait < 0 || s.Slices < 0 {
		return RunQueueSample{}, false, nil
	}
	return s, true, nil
}
