package monitor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// ProcFS reads this process's resource use from /proc and its cgroup. The
// roots are fields so tests can point them at fake trees. It holds no
// state, so the heartbeater and the evaluator share one.
type ProcFS struct {
	Proc   string // normally /proc
	Cgroup string // normally /sys/fs/cgroup
	NumCPU int    // CPUs the process may run on, the ceiling of any CPU limit
}

// DefaultProcFS reads the real process.
func DefaultProcFS() ProcFS {
	return ProcFS{Proc: "/proc", Cgroup: "/sys/fs/cgroup", NumCPU: runtime.NumCPU()}
}

// userHZ is the unit of utime and stime in /proc/<pid>/stat. Linux fixes
// USER_HZ at 100 for user space on the architectures we run on, whatever
// the kernel's internal HZ.
const userHZ = 100

// CPUTime is the process's user + system CPU time so far.
func (fs ProcFS) CPUTime() (time.Duration, error) {
	path := filepath.Join(fs.Proc, "self", "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no ')' after the command name", path)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields after the command name, want at least 13", path, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: utime/stime: %w", path, err)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// RSSBytes is the process's resident set size (VmRSS), what Heroku's
// memory limit is about.
func (fs ProcFS) RSSBytes() (int64, error) {
	path := filepath.Join(fs.Proc, "self", "status")
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || strings.TrimSpace(unit) != "kB" {
			return 0, fmt.Errorf("%s: VmRSS %q: want a number of kB", path, strings.TrimSpace(rest))
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return 0, fmt.Errorf("%s: no VmRSS line", path)
}

// CPULimit is how many CPUs the process may use: the tightest cgroup CPU
// quota on its cgroup's path (v2 cpu.max, or v1 cpu.cfs_quota_us /
// cpu.cfs_period_us), capped by NumCPU. source says which one applied.
func (fs ProcFS) CPULimit() (cpus float64, source string) {
	cpus, source = float64(max(fs.NumCPU, 1)), "cpus"
	cg, err := fs.cgroups()
	if err != nil {
		return cpus, source
	}
	if cg.v2 {
		for _, dir := range cg.chain("") {
			if q, ok := readCPUMax(filepath.Join(dir, "cpu.max")); ok && q < cpus {
				cpus, source = q, "cgroup v2 cpu.max"
			}
		}
		return cpus, source
	}
	for _, dir := range cg.chain("cpu") {
		quota, err1 := readInt(filepath.Join(dir, "cpu.cfs_quota_us"))
		period, err2 := readInt(filepath.Join(dir, "cpu.cfs_period_us"))
		if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
			continue // -1: no quota at this level
		}
		if q := float64(quota) / float64(period); q < cpus {
			cpus, source = q, "cgroup v1 cpu.cfs_quota_us"
		}
	}
	return cpus, source
}

// CgroupMemoryBytes is the memory charged to the process's cgroup (v2
// memory.current, v1 memory.usage_in_bytes). It includes page cache, so it
// is shown beside RSS rather than alerted on.
func (fs ProcFS) CgroupMemoryBytes() (int64, error) {
	cg, err := fs.cgroups()
	if err != nil {
		return 0, err
	}
	name, controller := "memory.current", ""
	if !cg.v2 {
		name, controller = "memory.usage_in_bytes", "memory"
	}
	// Only the process's own cgroup: a parent's figure counts other
	// processes too.
	return readInt(filepath.Join(cg.chain(controller)[0], name))
}

// cgroupSet is the process's place in the cgroup tree(s).
type cgroupSet struct {
	root  string
	v2    bool
	paths map[string]string // v1: controller → (mount dir name, path); v2: "" → path
	mount map[string]string // v1: controller → mount dir
}

// cgroups reads /proc/self/cgroup. The unified (v2) hierarchy is in use
// when the cgroup root itself has cgroup.controllers; on hybrid hosts the
// "0::" line exists too but the controllers live in the v1 trees.
func (fs ProcFS) cgroups() (cgroupSet, error) {
	path := filepath.Join(fs.Proc, "self", "cgroup")
	b, err := os.ReadFile(path)
	if err != nil {
		return cgroupSet{}, err
	}
	cg := cgroupSet{root: fs.Cgroup, paths: map[string]string{}, mount: map[string]string{}}
	_, statErr := os.Stat(filepath.Join(fs.Cgroup, "cgroup.controllers"))
	cg.v2 = statErr == nil
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if cg.v2 {
			if parts[0] == "0" && parts[1] == "" {
				cg.paths[""] = parts[2]
			}
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			cg.paths[c] = parts[2]
			// "cpu,cpuacct" is mounted under that name, with "cpu" often a
			// symlink to it; try the exact list first.
			for _, dir := range []string{parts[1], c} {
				if d := filepath.Join(fs.Cgroup, dir); isDir(d) {
					cg.mount[c] = d
					break
				}
			}
		}
	}
	if cg.v2 {
		if _, ok := cg.paths[""]; !ok {
			return cgroupSet{}, fmt.Errorf("%s: no unified (0::) line", path)
		}
	}
	return cg, nil
}

// chain lists the controller's directories from the process's own cgroup
// up to its mount. Inside a container with its own cgroup namespace the
// path reads "/" and the mount is the container's cgroup; when the path
// from /proc is not under the mount (a host path seen from a container),
// the mount alone is used.
func (cg cgroupSet) chain(controller string) []string {
	mount := cg.root
	if !cg.v2 {
		m, ok := cg.mount[controller]
		if !ok {
			return []string{filepath.Join(cg.root, controller)}
		}
		mount = m
	}
	rel := filepath.Clean("/" + cg.paths[controller])
	dir := filepath.Join(mount, rel)
	if !isDir(dir) {
		return []string{mount}
	}
	out := []string{dir}
	for dir != mount && len(out) < 64 {
		dir = filepath.Dir(dir)
		out = append(out, dir)
	}
	return out
}

// readCPUMax parses "max 100000" (no limit) or "150000 100000".
func readCPUMax(path string) (float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "max" {
		return 0, false
	}
	quota, err1 := strconv.ParseFloat(f[0], 64)
	period, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
		return 0, false
	}
	return quota / period, true
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// CPUMeter turns the process's cumulative CPU time into a percentage of
// its CPU limit between two calls of Sample. It is confined to one
// goroutine (the evaluator's).
type CPUMeter struct {
	fs  ProcFS
	now func() time.Time

	primed  bool
	lastCPU time.Duration
	lastAt  time.Time
}

// NewCPUMeter measures fs's process with the clock now.
func NewCPUMeter(fs ProcFS, now func() time.Time) *CPUMeter {
	return &CPUMeter{fs: fs, now: now}
}

// Sample returns the CPU used since the previous call as a percent of
// limit CPUs. ok is false on the first call, and after a clock or counter
// that went backwards: there is nothing to compare with yet.
func (m *CPUMeter) Sample() (pct, limit float64, ok bool, err error) {
	cpu, err := m.fs.CPUTime()
	if err != nil {
		m.primed = false
		return 0, 0, false, err
	}
	at := m.now()
	limit, _ = m.fs.CPULimit()
	prevCPU, prevAt, primed := m.lastCPU, m.lastAt, m.primed
	m.lastCPU, m.lastAt, m.primed = cpu, at, true
	wall := at.Sub(prevAt)
	if !primed || wall <= 0 || cpu < prevCPU {
		return 0, limit, false, nil
	}
	return float64(cpu-prevCPU) / float64(wall) / limit * 100, limit, true, nil
}
