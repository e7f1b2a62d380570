package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// proc is one server process started by devstack. It runs in its own
// process group so stop can take down anything it forked, and it gets
// SIGKILL if devstack itself dies, so a killed devstack leaves no orphans.
//
// Fields are set by startProc and not changed afterwards, except err,
// which the waiter goroutine writes before closing done.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// errExitedEarly marks a server that died before it was ready, usually
// because another process grabbed its port in the meantime.
var errExitedEarly = errors.New("exited before it was ready")

func startProc(name, logPath string, env []envVar, bin string, args ...string) (*proc, error) {
	return startProcAttr(name, logPath, env, &syscall.SysProcAttr{}, bin, args...)
}

// startProcAttr is startProc with attr's namespaces and credentials.
func startProcAttr(name, logPath string, env []envVar, attr *syscall.SysProcAttr, bin string, args ...string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = mergeEnv(os.Environ(), env)
	attr.Setpgid, attr.Pdeathsig = true, syscall.SIGKILL
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) { p.stopWith(syscall.SIGTERM, grace) }

// stopWith is stop for a server whose quick-stop signal is not SIGTERM.
func (p *proc) stopWith(sig syscall.Signal, grace time.Duration) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		fmt.Fprintf(os.Stderr, "devstack: %s did not stop within %v, killing it\n", p.name, grace)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader still belong to the group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// waitReady polls check until it succeeds, the process exits, ctx ends or
// timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		checkCtx, cancelCheck := context.WithTimeout(ctx, 2*time.Second)
		last = check(checkCtx)
		cancelCheck()
		if last == nil {
			// A server on a clashing port may have answered for us; make
			// sure ours is still the one running.
			select {
			case <-p.done:
				return fmt.Errorf("%s %w: %v", p.name, errExitedEarly, p.err)
			default:
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s %w: %v", p.name, errExitedEarly, p.err)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready after %v: %w", p.name, timeout, last)
			}
			return fmt.Errorf("%s: %w", p.name, ctx.Err())
		case <-tick.C:
		}
	}
}

// configServer is a server started as `bin --config file`.
type configServer struct {
	name, bin, logPath, cfgPath string
	stopSig                     syscall.Signal // its quick stop
}

// start writes config (0600: it holds API secrets), starts the server and
// waits until ready passes; on failure the server is stopped again.
func (c configServer) start(ctx context.Context, config string, ready func(context.Context) error) (*proc, error) {
	if err := os.WriteFile(c.cfgPath, []byte(config), 0o600); err != nil {
		return nil, fmt.Errorf("%s config: %w", c.name, err)
	}
	p, err := startProc(c.name, c.logPath, nil, c.bin, "--config", c.cfgPath)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, readyTimeout, ready); err != nil {
		p.stopWith(c.stopSig, stopGrace)
		return nil, err
	}
	return p, nil
}

// retryOnClash runs start, and once more when the server exited early,
// since a port picked as free can be taken before the server binds it.
func retryOnClash(ctx context.Context, start func() error) error {
	err := start()
	if err != nil && errors.Is(err, errExitedEarly) && ctx.Err() == nil {
		err = start()
	}
	return err
}

// logTail returns the last n lines of a log file, for start failures.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
