package dialrate_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docshield/voice-worker/internal/dialrate"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/testenv"
	"github.com/docshield/voice-worker/internal/worker"
	"github.com/docshield/voice-worker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func client(t *testing.T, addr string) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func limiter(t *testing.T, c redis.UniversalClient, perSecond float64, burst int, maxWait time.Duration) *dialrate.Limiter {
	t.Helper()
	l, err := dialrate.New(dialrate.Options{Redis: c, Trunk: "ST_test", PerSecond: perSecond, Burst: burst, MaxWait: maxWait})
	require.NoError(t, err)
	return l
}

const (
	dialerEnv  = "DIALRATE_TEST_DIALER"
	dialPrefix = "dial "
)

// TestDialerProcess is not a test: it is one worker of
// TestFourProcessesHoldTheRate, run as a child process. Three goroutines
// dial as fast as the limiter lets them, and each dial's time is printed.
func TestDialerProcess(t *testing.T) {
	spec := os.Getenv(dialerEnv)
	if spec == "" {
		t.Skip("a child process of TestFourProcessesHoldTheRate")
	}
	var addr string
	var dials int
	var rate float64
	_, err := fmt.Sscan(spec, &addr, &rate, &dials)
	require.NoError(t, err)
	l := limiter(t, client(t, addr), rate, 1, time.Minute)
	var mu sync.Mutex
	var wg sync.WaitGroup
	left := dials
	for range 3 {
		wg.Go(func() {
			for {
				mu.Lock()
				if left == 0 {
					mu.Unlock()
					return
				}
				left--
				mu.Unlock()
				_, err := l.Wait(context.Background())
				now := time.Now()
				if err != nil {
					fmt.Printf("error %v\n", err)
					continue
				}
				fmt.Printf("%s%d\n", dialPrefix, now.UnixNano())
			}
		})
	}
	wg.Wait()
}

// Four worker processes, each with three calls ready to dial at once, on
// one Redis at 2 dials per second: the fleet's dials hold the rate within
// one token, though each process alone would have dialled everything at
// once.
func TestFourProcessesHoldTheRate(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	const (
		rate       = 2.0
		perProcess = 6
		processes  = 4
	)
	var mu sync.Mutex
	var times []time.Time
	var errs []string
	var wg sync.WaitGroup
	for range processes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDialerProcess$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %g %d", dialerEnv, r.Addr(), rate, perProcess))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		wg.Go(func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				mu.Lock()
				if v, ok := strings.CutPrefix(line, dialPrefix); ok {
					ns, _ := strconv.ParseInt(v, 10, 64)
					times = append(times, time.Unix(0, ns))
				} else if strings.HasPrefix(line, "error ") {
					errs = append(errs, line)
				}
				mu.Unlock()
			}
			_, _ = io.Copy(io.Discard, out)
			_ = cmd.Wait()
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Len(t, times, processes*perProcess)
	excess := testenv.MaxExcess(times, rate)
	span := times[len(times)-1].Sub(times[0])
	t.Logf("%d dials from %d processes over %s: %.2f dials/s; worst window exceeds the rate by %.2f dials (burst 1)",
		len(times), processes, span.Round(time.Millisecond), float64(len(times)-1)/span.Seconds(), excess)
	require.LessOrEqual(t, excess, 2.0, "the rate holds within one token of the bucket's burst")
	// Without the bucket all 24 dials would have gone within moments: the
	// first and last are at least 23 slots apart, less one slot of timing
	// noise.
	require.Greater(t, span, time.Duration(float64(len(times)-2)/rate*float64(time.Second)))
}

// A booking is refused, without taking a slot, when the slot would be
// further than MaxWait; looking at the backlog books nothing.
func TestReserveBoundsTheWait(t *testing.T) {
	t.Parallel()
	l := limiter(t, client(t, testenv.StartRedis(t).Addr()), 1, 2, 3*time.Second)
	ctx := t.Context()
	var waits []time.Duration
	for range 5 {
		w, err := l.Reserve(ctx)
		require.NoError(t, err)
		waits = append(waits, w)
	}
	require.Zero(t, waits[0])
	require.Zero(t, waits[1], "a burst of 2 goes at once")
	for i := 2; i < 5; i++ {
		require.InDelta(t, float64(i-1), waits[i].Seconds(), 0.5, "then one a second")
	}
	before, err := l.Backlog(ctx)
	require.NoError(t, err)
	_, err = l.Reserve(ctx)
	var se *dialrate.SlotError
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, dialrate.ErrNoSlot)
	require.Greater(t, se.Wait, 3*time.Second)
	after, err := l.Backlog(ctx)
	require.NoError(t, err)
	require.LessOrEqual(t, after, before, "a refused booking takes no slot")
}

// A slot's time is the bucket's (Redis's clock), one interval after the
// last one booked, however late its booker wakes up for it.
func TestSlotsAreTimedByTheBucket(t *testing.T) {
	t.Parallel()
	l := limiter(t, client(t, testenv.StartRedis(t).Addr()), 20, 1, 3*time.Second)
	var at []time.Time
	for range 4 {
		s, err := l.WaitSlot(t.Context())
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), s.At, 5*time.Second, "Redis's clock is this machine's")
		at = append(at, s.At)
	}
	for i := 1; i < len(at); i++ {
		require.GreaterOrEqual(t, at[i].Sub(at[i-1]), 50*time.Millisecond, "20 a second, burst 1")
	}
}

// The runner's last check runs after the call's slot came, and a call
// whose slot is too far is refused with the rate named, its check not run.
func TestBeforeDialWaitsThenChecks(t *testing.T) {
	t.Parallel()
	l := limiter(t, client(t, testenv.StartRedis(t).Addr()), 2, 1, 2*time.Second)
	ctx := t.Context()
	var checked []time.Time
	check := l.BeforeDial(func(context.Context, *store.Call) (string, error) {
		checked = append(checked, time.Now())
		return "", nil
	})
	start := time.Now()
	for range 3 {
		refusal, err := check(ctx, &store.Call{ID: "a1"})
		require.NoError(t, err)
		require.Empty(t, refusal)
	}
	require.Len(t, checked, 3)
	require.GreaterOrEqual(t, checked[2].Sub(start), 900*time.Millisecond, "the third dial's slot is a second after the first's")
	for range 4 {
		_, _ = l.Reserve(ctx) // someone else books the next two seconds
	}
	_, err := check(ctx, &store.Call{ID: "a2"})
	require.ErrorIs(t, err, dialrate.ErrNoSlot)
	require.Len(t, checked, 3, "no check, no dial")
}

// Through the worker's real server: a call task arriving while the trunk
// is booked beyond half the wait bound goes back without running and
// without spending a retry, for about the backlog; other tasks run.
func TestMiddlewareDefersCallsWithoutSpendingARetry(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	opt := asynq.RedisClientOpt{Addr: r.Addr()}
	l := limiter(t, client(t, r.Addr()), 1, 1, 4*time.Second)
	for range 5 {
		_, err := l.Reserve(t.Context())
		require.NoError(t, err)
	}
	var mu sync.Mutex
	ran := map[string]int{}
	core, logs := observer.New(zapcore.DebugLevel)
	srv := worker.New(worker.Options{Redis: opt, Concurrency: 2, ShutdownTimeout: 5 * time.Second, Logger: zap.New(core)})
	for _, typ := range tasks.Types {
		srv.Handle(typ, l.Middleware(tasks.TypeCallOutbound)(asynq.HandlerFunc(func(_ context.Context, tk *asynq.Task) error {
			mu.Lock()
			ran[tk.Type()]++
			mu.Unlock()
			return nil
		})))
	}
	testenv.Run(t, srv.Run)
	c := asynq.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	before := time.Now()
	call, err := c.Enqueue(asynq.NewTask(tasks.TypeCallOutbound, []byte(`{"attempt_id":"a1"}`)), asynq.Queue(tasks.QueueCalls), asynq.MaxRetry(3))
	require.NoError(t, err)
	_, err = c.Enqueue(asynq.NewTask(tasks.TypeSystemProbe, []byte(`{}`)), asynq.Queue(tasks.QueueLow))
	require.NoError(t, err)
	var got *asynq.TaskInfo
	require.Eventually(t, func() bool {
		ti, err := insp.GetTaskInfo(tasks.QueueCalls, call.ID)
		got = ti
		return err == nil && ti.State == asynq.TaskStateRetry
	}, 15*time.Second, 10*time.Millisecond)
	require.Zero(t, got.Retried, "a deferral spends no retry")
	require.Contains(t, got.LastErr, "dials booked ahead")
	require.WithinRange(t, got.NextProcessAt, before.Add(2*time.Second), time.Now().Add(6*time.Second))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return ran[tasks.TypeSystemProbe] == 1 }, 15*time.Second, 10*time.Millisecond)
	mu.Lock()
	require.Zero(t, ran[tasks.TypeCallOutbound])
	mu.Unlock()
	q, err := insp.GetQueueInfo(tasks.QueueCalls)
	require.NoError(t, err)
	require.Zero(t, q.FailedTotal, "not counted as a failure")
	deferred := logs.FilterMessage("task.deferred").All()
	require.Len(t, deferred, 1, "one line per deferral")
	require.Contains(t, deferred[0].ContextMap()["error"], "dials booked ahead")

	var d *dialrate.Deferred
	require.True(t, errors.As(error(&dialrate.Deferred{Backlog: 3 * time.Second}), &d))
	require.True(t, worker.Deferred(d))
	require.Equal(t, 3*time.Second, worker.RetryDelay(0, d, asynq.NewTask(tasks.TypeCallOutbound, nil)))
}

func TestOptionsAreChecked(t *testing.T) {
	_, err := dialrate.New(dialrate.Options{Trunk: "", PerSecond: 0})
	require.ErrorContains(t, err, "Options.Redis is required")
	require.ErrorContains(t, err, "Options.Trunk is required")
	require.ErrorContains(t, err, "PerSecond must be above 0")
}
