package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
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

func TestMain(m *testing.M) {
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
			without = append(without, b.name)
		}
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
