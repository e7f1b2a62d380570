package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRunChildExitCodes(t *testing.T) {
	sigs := make(chan os.Signal)
	require.Equal(t, 0, runChild([]string{"true"}, os.Environ(), sigs))
	require.Equal(t, 3, runChild([]string{"sh", "-c", "exit 3"}, os.Environ(), sigs))
	require.Equal(t, 128+int(syscall.SIGTERM), runChild([]string{"sh", "-c", "kill -TERM $$"}, os.Environ(), sigs))
	require.Equal(t, 127, runChild([]string{"/nonexistent/cmd"}, os.Environ(), sigs))
}

func TestRunChildGetsEnv(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	env := mergeEnv(os.Environ(), []envVar{{"DEVSTACK_TEST_VALUE", "hello"}, {"OUT", out}})
	code := runChild([]string{"sh", "-c", `printf %s "$DEVSTACK_TEST_VALUE" > "$OUT"`}, env, make(chan os.Signal))
	require.Equal(t, 0, code)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
}

// A signal devstack receives must reach the child's whole process group.
func TestRunChildForwardsSignalsToGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	sigs := make(chan os.Signal, 1)
	done := make(chan int, 1)
	go func() {
		// The shell waits on a grandchild, which must get the signal too.
		done <- runChild([]string{"sh", "-c", `sleep 300 & echo $! > "$0.tmp"; mv "$0.tmp" "$0"; wait`, pidFile}, os.Environ(), sigs)
	}()
	var grandchild int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		grandchild, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, 30*time.Second, 10*time.Millisecond)

	sigs <- syscall.SIGTERM
	require.Equal(t, 128+int(syscall.SIGTERM), <-done)
	require.Eventually(t, func() bool { return processGone(grandchild) }, 30*time.Second, 10*time.Millisecond,
		"grandchild %d outlived the signal", grandchild)
}

// processGone reports whether pid no longer runs (a zombie counts as gone:
// it waits only for its parent to reap it).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// Format: pid (comm) state ...; comm may hold spaces and parentheses.
	s := string(b)
	rest := s[strings.LastIndexByte(s, ')')+1:]
	return strings.HasPrefix(strings.TrimSpace(rest), "Z")
}
