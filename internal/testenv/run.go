package testenv

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Run runs a component's blocking run function (a worker's Run, say) on
// its own goroutine until the test ends, then cancels its context and
// requires that it returned nil: the shutdown is part of what is tested.
func Run(t testing.TB, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}
