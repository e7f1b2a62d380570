package monitor

import "path/filepath"

// unlimitedMemory: cgroup v1 writes "no limit" as a page-rounded 2^63-1,
// and nothing real comes near 2^60 bytes.
const unlimitedMemory = 1 << 60

// MemoryLimit is the process's memory limit: the tightest cgroup limit on
// its path (v2 memory.max, v1 memory.limit_in_bytes), and which file it
// came from. A Heroku dyno's memory is its cgroup's limit (Heroku's own
// buildpacks read it there). 0 and "" when there is none ("max", or v1's
// unlimited).
func (fs ProcFS) MemoryLimit() (bytes int64, source string) {
	cg, err := fs.cgroups()
	if err != nil {
		return 0, ""
	}
	name, controller, label := "memory.max", "", "cgroup v2 memory.max"
	if !cg.v2 {
		name, controller, label = "memory.limit_in_bytes", "memory", "cgroup v1 memory.limit_in_bytes"
	}
	for _, dir := range cg.chain(controller) {
		n, ok := readMemoryLimit(filepath.Join(dir, name))
		if ok && (bytes == 0 || n < bytes) {
			bytes, source = n, label
		}
	}
	return bytes, source
}

// readMemoryLimit reads one limit file; false for none, "max" or unlimited.
func readMemoryLimit(path string) (int64, bool) {
	v, err := readInt(path)
	if err != nil {
		return 0, false // "max", or no file at this level
	}
	return v, v > 0 && v < unlimitedMemory
}
