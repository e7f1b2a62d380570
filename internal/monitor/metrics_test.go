package monitor

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeTree writes files (path → content) under a new temp dir and returns
// it. Directories are created as needed.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	}
	return root
}

// statLine is a /proc/self/stat line with the given utime and stime ticks
// and a command name that has spaces and a parenthesis in it.
func statLine(utime, stime int) string {
	return "4242 (bin/work er) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 " +
		strconv.Itoa(utime) + " " + strconv.Itoa(stime) + " 0 0 20 0 8 0 12345 1000000 200 18446744073709551615\n"
}

func procFS(t *testing.T, files map[string]string, numCPU int) ProcFS {
	root := fakeTree(t, files)
	return ProcFS{Proc: filepath.Join(root, "proc"), Cgroup: filepath.Join(root, "cgroup"), NumCPU: numCPU}
}

func TestCPUTimeParsesAfterTheCommandName(t *testing.T) {
	fs := procFS(t, map[string]string{"proc/self/stat": statLine(250, 150)}, 2)
	d, err := fs.CPUTime()
	require.NoError(t, err)
	require.Equal(t, 4*time.Second, d) // 400 ticks at 100 Hz
}

func TestCPUTimeRejectsGarbage(t *testing.T) {
	for name, content := range map[string]string{
		"no parenthesis":  "4242 bin S 1 2 3",
		"too few fields":  "4242 (bin) S 1 2 3\n",
		"utime not a num": "4242 (bin) S 1 4242 4242 0 -1 4194560 100 0 0 0 xx 5 0 0\n",
	} {
		t.Run(name, func(t *testing.T) {
			fs := procFS(t, map[string]string{"proc/self/stat": content}, 2)
			_, err := fs.CPUTime()
			require.Error(t, err)
			require.Contains(t, err.Error(), "stat")
		})
	}
	_, err := procFS(t, nil, 2).CPUTime()
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestRSSBytes(t *testing.T) {
	fs := procFS(t, map[string]string{"proc/self/status": "Name:\tworker\nVmPeak:\t 900000 kB\nVmRSS:\t  460800 kB\nThreads:\t12\n"}, 2)
	b, err := fs.RSSBytes()
	require.NoError(t, err)
	require.Equal(t, int64(450<<20), b)

	fs = procFS(t, map[string]string{"proc/self/status": "Name:\tworker\n"}, 2)
	_, err = fs.RSSBytes()
	require.ErrorContains(t, err, "no VmRSS")

	fs = procFS(t, map[string]string{"proc/self/status": "VmRSS:\t12 MB\n"}, 2)
	_, err = fs.RSSBytes()
	require.ErrorContains(t, err, "kB")
}

func TestCPULimitCgroupV2(t *testing.T) {
	cases := []struct {
		name   string
		files  map[string]string
		numCPU int
		want   float64
		source string
	}{
		{"container with its own namespace", map[string]string{
			"proc/self/cgroup":          "0::/\n",
			"cgroup/cgroup.controllers": "cpu memory\n",
			"cgroup/cpu.max":            "150000 100000\n",
		}, 8, 1.5, "cgroup v2 cpu.max"},
		{"no quota: the CPU count", map[string]string{
			"proc/self/cgroup":          "0::/\n",
			"cgroup/cgroup.controllers": "cpu memory\n",
			"cgroup/cpu.max":            "max 100000\n",
		}, 4, 4, "cpus"},
		{"a parent's quota is tighter than the process's", map[string]string{
			"proc/self/cgroup":                           "0::/system.slice/worker.service\n",
			"cgroup/cgroup.controllers":                  "cpu memory\n",
			"cgroup/system.slice/cpu.max":                "50000 100000\n",
			"cgroup/system.slice/worker.service/cpu.max": "200000 100000\n",
		}, 4, 0.5, "cgroup v2 cpu.max"},
		{"quota above the CPU count is capped", map[string]string{
			"proc/self/cgroup":          "0::/\n",
			"cgroup/cgroup.controllers": "cpu\n",
			"cgroup/cpu.max":            "800000 100000\n",
		}, 2, 2, "cpus"},
		{"a host path not under the mount falls back to the mount", map[string]string{
			"proc/self/cgroup":          "0::/kubepods/pod1/abc\n",
			"cgroup/cgroup.controllers": "cpu\n",
			"cgroup/cpu.max":            "100000 100000\n",
		}, 4, 1, "cgroup v2 cpu.max"},
		{"no cgroup file at all", map[string]string{}, 3, 3, "cpus"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cpus, source := procFS(t, c.files, c.numCPU).CPULimit()
			require.InDelta(t, c.want, cpus, 1e-9)
			require.Equal(t, c.source, source)
		})
	}
}

func TestCPULimitCgroupV1(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  float64
	}{
		{"combined cpu,cpuacct mount", map[string]string{
			"proc/self/cgroup":                     "4:memory:/\n3:cpu,cpuacct:/\n0::/\n",
			"cgroup/cpu,cpuacct/cpu.cfs_quota_us":  "50000\n",
			"cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
		}, 0.5},
		{"separate cpu mount, nested path", map[string]string{
			"proc/self/cgroup":                        "2:cpuacct:/docker/abc\n1:cpu:/docker/abc\n0::/\n",
			"cgroup/cpu/cpu.cfs_quota_us":             "-1\n",
			"cgroup/cpu/cpu.cfs_period_us":            "100000\n",
			"cgroup/cpu/docker/abc/cpu.cfs_quota_us":  "250000\n",
			"cgroup/cpu/docker/abc/cpu.cfs_period_us": "100000\n",
		}, 2.5},
		{"quota -1 is unlimited", map[string]string{
			"proc/self/cgroup":             "1:cpu:/\n",
			"cgroup/cpu/cpu.cfs_quota_us":  "-1\n",
			"cgroup/cpu/cpu.cfs_period_us": "100000\n",
		}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cpus, _ := procFS(t, c.files, 4).CPULimit()
			require.InDelta(t, c.want, cpus, 1e-9)
		})
	}
}

func TestCgroupMemory(t *testing.T) {
	v2 := procFS(t, map[string]string{
		"proc/self/cgroup":          "0::/app\n",
		"cgroup/cgroup.controllers": "memory\n",
		"cgroup/memory.current":     "999999999\n", // the parent's: must not be used
		"cgroup/app/memory.current": "104857600\n",
	}, 2)
	b, err := v2.CgroupMemoryBytes()
	require.NoError(t, err)
	require.Equal(t, int64(100<<20), b)

	v1 := procFS(t, map[string]string{
		"proc/self/cgroup": "4:memory:/process_api/abc\n1:cpu:/\n",
		"cgroup/memory/process_api/abc/memory.usage_in_bytes": "52428800\n",
	}, 2)
	b, err = v1.CgroupMemoryBytes()
	require.NoError(t, err)
	require.Equal(t, int64(50<<20), b)

	none := procFS(t, map[string]string{"proc/self/cgroup": "0::/\n", "cgroup/cgroup.controllers": ""}, 2)
	_, err = none.CgroupMemoryBytes()
	require.Error(t, err, "the root cgroup has no memory.current")
}

func TestCPUMeterPercentOfLimit(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"proc/self/stat":            statLine(100, 0),
		"proc/self/cgroup":          "0::/\n",
		"cgroup/cgroup.controllers": "cpu\n",
		"cgroup/cpu.max":            "50000 100000\n", // half a CPU
	})
	fs := ProcFS{Proc: filepath.Join(root, "proc"), Cgroup: filepath.Join(root, "cgroup"), NumCPU: 2}
	clock := newFakeClock()
	m := NewCPUMeter(fs, clock.Now)
	setStat := func(u, s int) {
		require.NoError(t, os.WriteFile(filepath.Join(root, "proc/self/stat"), []byte(statLine(u, s)), 0o644))
	}

	_, _, ok, err := m.Sample()
	require.NoError(t, err)
	require.False(t, ok, "the first sample is only a baseline")

	// 10 s of wall time, 3 s of CPU (200 + 100 ticks) on a half-CPU limit: 60%.
	clock.Advance(10 * time.Second)
	setStat(300, 100)
	pct, limit, ok, err := m.Sample()
	require.NoError(t, err)
	require.True(t, ok)
	require.InDelta(t, 0.5, limit, 1e-9)
	require.InDelta(t, 60, pct, 1e-9)

	// A counter that went backwards (another process's stat, a bad read)
	// re-primes instead of reporting a negative figure.
	clock.Advance(10 * time.Second)
	setStat(10, 0)
	_, _, ok, err = m.Sample()
	require.NoError(t, err)
	require.False(t, ok)

	// No wall time passed: nothing to divide by.
	setStat(20, 0)
	_, _, ok, err = m.Sample()
	require.NoError(t, err)
	require.False(t, ok)

	// A read error is returned and forgets the baseline.
	require.NoError(t, os.Remove(filepath.Join(root, "proc/self/stat")))
	_, _, ok, err = m.Sample()
	require.Error(t, err)
	require.False(t, ok)
	setStat(20, 0)
	clock.Advance(time.Second)
	_, _, ok, err = m.Sample()
	require.NoError(t, err)
	require.False(t, ok, "after an error the next sample is a baseline again")
}

// The real /proc of this test process reads sensibly.
func TestProcFSReadsThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	fs := DefaultProcFS()
	rss, err := fs.RSSBytes()
	require.NoError(t, err)
	require.Greater(t, rss, int64(1<<20))
	_, err = fs.CPUTime()
	require.NoError(t, err)
	cpus, source := fs.CPULimit()
	require.Greater(t, cpus, 0.0)
	require.LessOrEqual(t, cpus, float64(runtime.NumCPU()))
	require.NotEmpty(t, source)
	cg, cgErr := fs.CgroupMemoryBytes()
	t.Logf("this host: %.2f CPUs (%s), RSS %d MB, cgroup memory %d MB (err %v)", cpus, source, rss>>20, cg>>20, cgErr)
}
