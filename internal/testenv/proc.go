package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// server is a private server process a test starts, kills and starts
// again: Redis, MinIO.
type server struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// startServer starts cmd in its own process group. Pdeathsig: a test
// binary killed by its timeout must not leave the server behind.
func startServer(cmd *exec.Cmd) (*server, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	return s, nil
}

// kill stops the server with SIGKILL, as a crash would, and waits for it.
func (s *server) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// waitReady polls ready every interval until it succeeds, the server
// exits or limit passes.
func (s *server) waitReady(limit, interval time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited", s.cmd.Path)
		default:
		}
		if last = ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
	return last
}

// launch starts cmd and waits until ready; t fails with the server's log
// (at logPath) if it does not come up within limit.
func launch(t testing.TB, cmd *exec.Cmd, logPath string, limit, interval time.Duration, ready func(context.Context) error) *server {
	t.Helper()
	s, err := startServer(cmd)
	if err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	if err := s.waitReady(limit, interval, ready); err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("%s not ready: %v\n%s", cmd.Path, err, log)
	}
	return s
}

// stop kills the server if it runs; nil does nothing.
func (s *server) stop() {
	if s != nil {
		s.kill()
	}
}
