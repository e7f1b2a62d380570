package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

// devstackBinary builds this command once per test run, to test it the
// way make and CI run it: as a process receiving signals.
func devstackBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "devstack-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtPath = filepath.Join(dir, "devstack")
		out, err := exec.Command("go", "build", "-o", builtPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, out}
		}
	})
	require.NoError(t, buildErr)
	return builtPath
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// TestMain runs the tests in a private network namespace of their own,
// as devstack runs the stack: the servers they start offer its dummy
// address for media.
func TestMain(m *testing.M) {
	if !inNetns() {
		sigs := notifySignals()
		os.Exit(runInNetns(os.Args[1:], sigs))
	}
	if err := setupNetns(); err != nil {
		fmt.Fprintf(os.Stderr, "devstack tests: private network namespace: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if builtPath != "" {
		os.RemoveAll(filepath.Dir(builtPath))
	}
	os.Exit(code)
}

// pidsMentioning lists processes whose command line contains s; every
// server devstack starts names its stack directory in its arguments.
func pidsMentioning(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if bytes.Contains(b, []byte(s)) && !bytes.Contains(b, []byte("devstack-bin-")) {
			pids = append(pids, e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return pids
}

// withoutMissing is the --without list that leaves out servers not built
// on this machine (and what needs them), so tests never trigger a
// multi-minute build (`make tools` builds them).
func withoutMissing(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed: run scripts/install-deps.sh")
	}
	cache, err := cacheDir()
	require.NoError(t, err)
	var without []string
	for _, b := range builtServers {
		if _, err := os.Stat(b.path(cache)); err != nil {
			t.Logf("%s not in the cache; testing without it (run devstack install)", b.name)
			without = append(without, b.name)
		}
	}
	if slices.Contains(without, "livekit") && !slices.Contains(without, "sip") {
		without = append(without, "sip")
	}
	return strings.Join(without, ",")
}

// Ctrl-C on `devstack up` must leave no server behind.
func TestUpStopsAllServersOnSIGINT(t *testing.T) {
	without := withoutMissing(t)
	bin := devstackBinary(t)
	dir := t.TempDir()
	envFile := filepath.Join(t.TempDir(), "up.env")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "up", "--dir", dir, "--env-file", envFile, "--without", without)
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})

	require.Eventually(t, func() bool {
		_, err := os.Stat(envFile)
		return err == nil
	}, 3*time.Minute, 20*time.Millisecond, "env file never appeared")
	require.NotEmpty(t, pidsMentioning(t, dir), "no server processes found for %s", dir)

	// enter runs a command in the stack's namespace, with its env.
	out, err := exec.Command(bin, "enter", "--env-file", envFile, "--",
		"sh", "-c", `echo "$REDIS_URL"; readlink /proc/self/ns/net; readlink "/proc/$DEVSTACK_PID/ns/net"`).Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("devstack enter: %v\n%s", err, exitErr.Stderr)
	}
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 3, "enter printed %q", out)
	require.Regexp(t, `^redis://127\.0\.0\.1:\d+/0$`, lines[0])
	require.Equal(t, lines[2], lines[1], "enter ran outside the stack's network namespace")
	require.NotEqual(t, netnsOf(t, os.Getpid()), lines[1], "the stack shares the tests' network namespace")

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-done:
		done <- err // for the cleanup
		require.NoError(t, err, "stderr:\n%s", stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("devstack up did not exit after SIGINT; stderr:\n%s", stderr.String())
	}
	require.Empty(t, pidsMentioning(t, dir), "servers outlived devstack up")
	require.NoFileExists(t, envFile)
}

// exec hands the stack's variables to the command and returns its code.
func TestExecPassesEnvAndExitCode(t *testing.T) {
	without := withoutMissing(t)
	bin := devstackBinary(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "exec", "--dir", dir, "--without", without, "--",
		"sh", "-c", `echo "REDIS_URL=$REDIS_URL"; echo "REQUIRE=$DOCSHIELD_REQUIRE_STACK"; exit 5`)
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr)
	require.Equal(t, 5, exitErr.ExitCode())
	require.Regexp(t, `(?m)^REDIS_URL=redis://127\.0\.0\.1:\d+/0$`, string(out))
	require.Contains(t, string(out), "REQUIRE=1\n")
	require.Empty(t, pidsMentioning(t, dir), "servers outlived devstack exec")
}

// exec runs the stack and the command in a network namespace of their
// own, holding only lo and the dummy link, with no route out.
func TestExecRunsInAPrivateNetworkNamespace(t *testing.T) {
	bin := devstackBinary(t)
	out, err := exec.Command(bin, "exec", "--dir", t.TempDir(), "--without", strings.Join(serviceNames, ","), "--",
		"sh", "-c", `readlink /proc/self/ns/net; echo "$DEVSTACK_NETNS_ADDR"; cat /proc/self/net/dev; cat /proc/self/net/route`).Output()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.NotEqual(t, netnsOf(t, os.Getpid()), lines[0], "the command ran in devstack's own network namespace")
	require.Equal(t, netnsAddr, lines[1])
	var ifaces []string
	routes := 0
	for _, l := range lines[2:] {
		name, _, ok := strings.Cut(strings.TrimSpace(l), ":")
		switch {
		case ok && !strings.Contains(name, "|") && !strings.Contains(name, " "):
			ifaces = append(ifaces, name)
		case strings.HasPrefix(l, "Iface\t"):
		case strings.Contains(l, "\t"):
			routes++
		}
	}
	slices.Sort(ifaces)
	require.Equal(t, []string{netnsLink, "lo"}, ifaces, "interfaces:\n%s", out)
	require.Zero(t, routes, "IPv4 routes:\n%s", out)
}

// netnsOf names the network namespace pid is in.
func netnsOf(t *testing.T, pid int) string {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	require.NoError(t, err)
	return ns
}
