package periodic

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEveryRunsAtStartThenOnTheTicker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int32
		l := New(Options{Every: time.Minute, Run: func(context.Context) { runs.Add(1) }})
		l.Start()
		synctest.Wait()
		require.EqualValues(t, 1, runs.Load(), "a run at start")
		time.Sleep(3*time.Minute + time.Second)
		synctest.Wait()
		require.EqualValues(t, 4, runs.Load())
		l.Shutdown()
		time.Sleep(time.Hour)
		synctest.Wait()
		require.EqualValues(t, 4, runs.Load(), "nothing after Shutdown")
		l.Shutdown() // again: harmless
	})
}

func TestNextWaitsBeforeEveryRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var at []time.Time
		start := time.Now()
		l := New(Options{Next: func(now time.Time) time.Duration { return 10*time.Second - now.Sub(start)%(10*time.Second) },
			Run: func(context.Context) { at = append(at, time.Now()) }})
		l.Start()
		time.Sleep(35 * time.Second)
		synctest.Wait()
		l.Shutdown()
		require.Equal(t, []time.Time{start.Add(10 * time.Second), start.Add(20 * time.Second), start.Add(30 * time.Second)}, at)
	})
}

// Shutdown cancels the run in progress and waits for it to return.
func TestShutdownCancelsTheRunInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cancelled atomic.Bool
		l := New(Options{Every: time.Minute, Run: func(ctx context.Context) {
			<-ctx.Done()
			cancelled.Store(true)
		}})
		l.Start()
		synctest.Wait()
		l.Shutdown()
		require.True(t, cancelled.Load())
	})
}

type manual struct{ c chan time.Time }

func (m manual) C() <-chan time.Time { return m.c }
func (m manual) Stop()               {}

func TestTestsTickByHand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := manual{c: make(chan time.Time)}
		var runs atomic.Int32
		l := New(Options{Every: time.Hour, NewTicker: func(time.Duration) Ticker { return m },
			Run: func(context.Context) { runs.Add(1) }})
		l.Start()
		m.c <- time.Now()
		m.c <- time.Now()
		synctest.Wait()
		require.EqualValues(t, 3, runs.Load())
		l.Shutdown()
	})
}
