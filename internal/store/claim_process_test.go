package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/docshield/voice-worker/internal/testenv"
)

// Environment of the helper process started by TestClaimRaceAcrossProcesses.
const (
	helperAttemptEnv = "STORE_HELPER_ATTEMPT"
	helperDBEnv      = "STORE_HELPER_DB"
	helperOwnerEnv   = "STORE_HELPER_OWNER"
	helperClaimers   = 25
)

// TestHelperClaimProcess is not a test on its own: TestClaimRaceAcrossProcesses
// runs this test binary twice with it selected. It connects, says READY,
// waits for a line on stdin so both processes start together, races
// helperClaimers goroutines for the attempt and prints one CLAIM line each.
func TestHelperClaimProcess(t *testing.T) {
	t.Parallel()
	attempt := os.Getenv(helperAttemptEnv)
	if attempt == "" {
		t.Skip("helper process for TestClaimRaceAcrossProcesses")
	}
	owner := os.Getenv(helperOwnerEnv)
	s := openStore(t, testenv.MongoURI(t), os.Getenv(helperDBEnv))
	require.NoError(t, s.Ping(t.Context()))
	fmt.Println("READY")
	_, err := bufio.NewReader(os.Stdin).ReadString('\n')
	require.NoError(t, err, "waiting for the parent's go")

	claims := make([]Claim, helperClaimers)
	errs := collectErrors(helperClaimers, func(i int) error {
		var err error
		claims[i], err = s.ClaimAttempt(t.Context(), attempt, fmt.Sprintf("%s-%d", owner, i), time.Minute)
		return err
	})
	for i, err := range errs {
		switch {
		case err == nil:
			fmt.Printf("CLAIM won %s %s\n", claims[i].Owner, claims[i].Fence)
		case isClaimLost(err):
			fmt.Println("CLAIM lost")
		default:
			fmt.Printf("CLAIM error %q\n", err.Error())
		}
	}
}

func isClaimLost(err error) bool { return errors.Is(err, ErrClaimLost) }

func TestClaimRaceAcrossProcesses(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	attempt := queuedAttempt(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		out    *bufio.Scanner
		stderr bytes.Buffer
	}
	children := make([]*child, 2)
	for i := range children {
		c := &child{}
		c.cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperClaimProcess$", "-test.count=1")
		c.cmd.Env = append(os.Environ(),
			helperAttemptEnv+"="+attempt,
			helperDBEnv+"="+s.DB().Name(),
			fmt.Sprintf("%s=proc%d", helperOwnerEnv, i))
		c.cmd.Stderr = &c.stderr
		var err error
		c.stdin, err = c.cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := c.cmd.StdoutPipe()
		require.NoError(t, err)
		c.out = bufio.NewScanner(stdout)
		require.NoError(t, c.cmd.Start())
		children[i] = c
	}

	// Both processes connect before either claims, so they really race.
	var transcript []string
	for i, c := range children {
		ready := false
		for !ready && c.out.Scan() {
			transcript = append(transcript, c.out.Text())
			ready = c.out.Text() == "READY"
		}
		if !ready {
			_ = c.cmd.Wait() // the child has closed stdout; Wait makes stderr safe to read
			t.Fatalf("helper %d never got ready; output %q, stderr %s", i, transcript, c.stderr.String())
		}
	}
	for _, c := range children {
		_, err := io.WriteString(c.stdin, "go\n")
		require.NoError(t, err)
		require.NoError(t, c.stdin.Close())
	}

	var won []string
	lost := 0
	for i, c := range children {
		for c.out.Scan() {
			line := c.out.Text()
			transcript = append(transcript, line)
			switch {
			case strings.HasPrefix(line, "CLAIM won "):
				won = append(won, strings.TrimPrefix(line, "CLAIM won "))
			case line == "CLAIM lost":
				lost++
			case strings.HasPrefix(line, "CLAIM "):
				t.Errorf("helper %d: %s", i, line)
			}
		}
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v; output %q, stderr %s", i, err, transcript, c.stderr.String())
		}
	}

	require.Len(t, won, 1, "exactly one winner across both processes; output %q", transcript)
	require.Equal(t, 2*helperClaimers-1, lost)
	owner, fence, ok := strings.Cut(won[0], " ")
	require.True(t, ok)
	got := getCall(t, s, attempt)
	require.Equal(t, CallDialing, got.Status)
	require.Equal(t, owner, got.Owner)
	require.Equal(t, fence, got.Fence)
	require.Equal(t, 1, got.Claims)
}
