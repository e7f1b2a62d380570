package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryOnClashRetriesOnlyEarlyExits(t *testing.T) {
	calls := 0
	err := retryOnClash(context.Background(), func() error {
		calls++
		if calls == 1 {
			return fmt.Errorf("redis %w: exit status 1", errExitedEarly)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, calls)

	calls = 0
	err = retryOnClash(context.Background(), func() error {
		calls++
		return fmt.Errorf("redis %w", errExitedEarly)
	})
	require.ErrorIs(t, err, errExitedEarly)
	require.Equal(t, 2, calls, "one retry, not a loop")

	calls = 0
	err = retryOnClash(context.Background(), func() error {
		calls++
		return errors.New("not ready after 2m")
	})
	require.Error(t, err)
	require.Equal(t, 1, calls, "a slow server is not a port clash")
}

// A port picked as free can be taken by another Redis before ours binds
// it; readiness must not be fooled by that server's PONG.
func TestRedisReadyRejectsForeignServer(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed: run scripts/install-deps.sh")
	}
	dir := t.TempDir()
	port, err := freePort()
	require.NoError(t, err)
	foreign, err := startProc("foreign-redis", filepath.Join(dir, "foreign.log"), nil, bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir)
	require.NoError(t, err)
	defer foreign.stop(stopGrace)

	// Our "server" never binds anything: it just lives.
	ours, err := startProc("redis", filepath.Join(dir, "ours.log"), nil, "sleep", "300")
	require.NoError(t, err)
	defer ours.stop(stopGrace)

	asForeign := &redisService{port: port, p: foreign}
	require.NoError(t, foreign.waitReady(context.Background(), time.Minute, asForeign.ready),
		"the foreign redis itself must pass, or the next check proves nothing")

	r := &redisService{port: port, p: ours}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.ErrorContains(t, r.ready(ctx), "answered by another redis")
}

func TestWaitReadyReportsEarlyExit(t *testing.T) {
	dir := t.TempDir()
	p, err := startProc("doomed", filepath.Join(dir, "doomed.log"), nil, "sh", "-c", "echo bind: address in use; exit 1")
	require.NoError(t, err)
	err = p.waitReady(context.Background(), time.Minute, func(context.Context) error { return errors.New("not yet") })
	require.ErrorIs(t, err, errExitedEarly)
	require.Contains(t, logTail(filepath.Join(dir, "doomed.log"), 5), "bind: address in use")
}
