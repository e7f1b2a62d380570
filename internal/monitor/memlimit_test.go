package monitor

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMemoryLimit(t *testing.T) {
	cases := []struct {
		name   string
		files  map[string]string
		want   int64
		source string
	}{
		{"v2 dyno: its own cgroup", map[string]string{
			"proc/self/cgroup":          "0::/\n",
			"cgroup/cgroup.controllers": "memory\n",
			"cgroup/memory.max":         "536870912\n",
		}, 512 << 20, "cgroup v2 memory.max"},
		{"v2: a parent's limit is tighter", map[string]string{
			"proc/self/cgroup":              "0::/app/worker\n",
			"cgroup/cgroup.controllers":     "memory\n",
			"cgroup/app/memory.max":         "1073741824\n",
			"cgroup/app/worker/memory.max":  "max\n",
			"cgroup/memory.max":             "max\n",
			"cgroup/app/worker/memory.high": "1\n",
		}, 1 << 30, "cgroup v2 memory.max"},
		{"v2: no limit anywhere", map[string]string{
			"proc/self/cgroup":          "0::/\n",
			"cgroup/cgroup.controllers": "memory\n",
			"cgroup/memory.max":         "max\n",
		}, 0, ""},
		{"v1, nested", map[string]string{
			"proc/self/cgroup":                            "5:memory:/lxc/abc\n1:cpu:/\n",
			"cgroup/memory/memory.limit_in_bytes":         "9223372036854771712\n",
			"cgroup/memory/lxc/abc/memory.limit_in_bytes": "1073741824\n",
		}, 1 << 30, "cgroup v1 memory.limit_in_bytes"},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup":                    "5:memory:/\n",
			"cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0, ""},
		{"no cgroup file", map[string]string{}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, source := procFS(t, c.files, 2).MemoryLimit()
			require.Equal(t, c.want, got)
			require.Equal(t, c.source, source)
		})
	}
	limit, source := DefaultProcFS().MemoryLimit()
	t.Logf("this host: memory limit %d MB (%q)", limit>>20, source)
}
