package elect_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/elect"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// wait bounds every wait for something that must happen: generous, since
// a busy machine delays it, and nothing here measures speed.
const wait = 20 * time.Second

func client(t *testing.T, r *testenv.Redis) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func start(t *testing.T, c redis.UniversalClient, owner string, lease time.Duration, log *zap.Logger) *elect.Elector {
	t.Helper()
	e, err := elect.New(elect.Options{Redis: c, Role: "reporter", Owner: owner, Lease: lease, Logger: log})
	require.NoError(t, err)
	e.Start()
	t.Cleanup(e.Shutdown)
	return e
}

func leaders(es []*elect.Elector) []int {
	var out []int
	for i, e := range es {
		if e.Leader() {
			out = append(out, i)
		}
	}
	return out
}

// Three candidates on one Redis: exactly one leads, Redis names it, and
// when it stops (giving the lease up) another takes over.
func TestOneLeaderAndHandOver(t *testing.T) {
	t.Parallel()
	c := client(t, testenv.StartRedis(t))
	core, logs := observer.New(zapcore.InfoLevel)
	var es []*elect.Elector
	for i := range 3 {
		es = append(es, start(t, c, fmt.Sprintf("worker.%d/1", i+1), 3*time.Second, zap.New(core)))
	}
	require.Eventually(t, func() bool { return len(leaders(es)) == 1 }, wait, 10*time.Millisecond)
	first := leaders(es)[0]
	holder, err := elect.Holder(t.Context(), c, "reporter")
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("worker.%d/1", first+1), holder)
	holder, left, err := elect.HolderAndLeft(t.Context(), c, "reporter")
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("worker.%d/1", first+1), holder)
	require.True(t, left > 0 && left <= 3*time.Second, "time left on the lease: %s", left)
	nobody, left, err := elect.HolderAndLeft(t.Context(), c, "nobody-has-this-role")
	require.NoError(t, err)
	require.Equal(t, "", nobody)
	require.Zero(t, left)
	// Renewals keep it: over two leases nobody else ever leads.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		l := leaders(es)
		require.LessOrEqual(t, len(l), 1, "two leaders at once")
		if len(l) == 1 {
			require.Equal(t, first, l[0], "the lease moved while its holder renewed it")
		}
		time.Sleep(20 * time.Millisecond) // sampling the state, not waiting for it
	}
	es[first].Shutdown()
	require.Eventually(t, func() bool { l := leaders(es); return len(l) == 1 && l[0] != first }, wait, 10*time.Millisecond)
	require.Len(t, logs.FilterMessage("leader.released").All(), 1)
	require.GreaterOrEqual(t, len(logs.FilterMessage("leader.elected").All()), 2)
}

// A leader that cannot reach Redis steps down within its lease, without a
// word from Redis: by then another process may hold the key.
func TestLeaderStepsDownWhenRedisIsGone(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	core, logs := observer.New(zapcore.InfoLevel)
	const lease = 2 * time.Second
	e := start(t, client(t, r), "worker.1/1", lease, zap.New(core))
	require.Eventually(t, e.Leader, wait, 10*time.Millisecond)
	r.Kill()
	// The promise is about a moment: once the lease taken before the kill
	// has run out, this process no longer believes it leads.
	time.Sleep(lease)
	require.False(t, e.Leader(), "the lease ran out: nobody may lead on it any more")
	require.Eventually(t, func() bool { return logs.FilterMessage("leader.lost").Len() == 1 }, wait, 10*time.Millisecond)
}

func TestOptionsAreChecked(t *testing.T) {
	_, err := elect.New(elect.Options{Role: "reporter", Owner: "w", Lease: time.Millisecond})
	require.ErrorContains(t, err, "Options.Redis is required")
	require.ErrorContains(t, err, "under 1s")
}

const (
	helperEnv   = "ELECT_TEST_CANDIDATE"
	electedLine = "elected "
)

// TestCandidateProcess is not a test: it is one candidate of
// TestKilledLeaderIsReplacedWithinTheLease, run as a child process. It
// prints a line when it is elected and lives until killed or its stdin
// closes.
func TestCandidateProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("a child process of TestKilledLeaderIsReplacedWithinTheLease")
	}
	var addr, owner, leaseText string
	_, err := fmt.Sscan(os.Getenv(helperEnv), &addr, &owner, &leaseText)
	require.NoError(t, err)
	lease, err := time.ParseDuration(leaseText)
	require.NoError(t, err)
	c := redis.NewClient(&redis.Options{Addr: addr})
	e, err := elect.New(elect.Options{Redis: c, Role: "reporter", Owner: owner, Lease: lease})
	require.NoError(t, err)
	e.Start()
	stdin := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdin) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	printed := false
	for {
		select {
		case <-stdin:
			e.Shutdown()
			return
		case <-tick.C:
		}
		if e.Leader() && !printed {
			fmt.Printf("%s%s\n", electedLine, owner)
			printed = true
		}
	}
}

type candidate struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// The leader process is killed (SIGKILL: no release, no goodbye); another
// candidate takes over once the lease runs out, within a lease and one
// try (a third of a lease) of the kill.
func TestKilledLeaderIsReplacedWithinTheLease(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	const lease = 3 * time.Second
	elected := make(chan string, 8)
	cands := map[string]candidate{}
	for i := range 3 {
		owner := fmt.Sprintf("worker.%d/1", i+1)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCandidateProcess$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s", helperEnv, r.Addr(), owner, lease))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		in, err := cmd.StdinPipe()
		require.NoError(t, err)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		cands[owner] = candidate{cmd, in}
		t.Cleanup(func() { _ = in.Close(); _ = cmd.Wait() })
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if o, ok := strings.CutPrefix(sc.Text(), electedLine); ok {
					elected <- o
				}
			}
		}()
	}
	var first string
	select {
	case first = <-elected:
	case <-time.After(wait):
		t.Fatal("nobody was elected")
	}
	require.NoError(t, cands[first].cmd.Process.Kill())
	killed := time.Now()
	var next string
	select {
	case next = <-elected:
	case <-time.After(wait):
		t.Fatal("nobody took over from the killed leader")
	}
	took := time.Since(killed)
	t.Logf("leader %s killed; %s took over after %s (lease %s)", first, next, took.Round(time.Millisecond), lease)
	require.NotEqual(t, first, next)
	require.Less(t, took, lease+lease/3+time.Second, "the takeover must come within the lease and one try")
}
