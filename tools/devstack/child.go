package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// runChild runs args with env and returns its exit code (128+signal when
// killed, as shells report it). SIGINT and SIGTERM that reach devstack are
// passed on to the child's process group. The child gets a group of its
// own so it receives each signal once (a terminal's Ctrl-C reaches
// devstack's group, not the child's) and so `go test`'s test binaries get
// it too.
func runChild(args []string, env []string, sigs <-chan os.Signal) int {
	cmd, err := startChild(args, env, &syscall.SysProcAttr{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack exec: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	return waitChild(cmd, sigs)
}

// startChild starts args in a process group of its own that dies with
// devstack; attr may add namespaces.
func startChild(args []string, env []string, attr *syscall.SysProcAttr) (*exec.Cmd, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// A background process group that reads the terminal is stopped by
	// SIGTTIN and would hang the run, so a terminal stays with devstack.
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice == 0 {
		cmd.Stdin = os.Stdin
	}
	attr.Setpgid, attr.Pdeathsig = true, syscall.SIGKILL
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// waitChild passes signals on to the child's process group until it exits,
// and returns its exit code.
func waitChild(cmd *exec.Cmd, sigs <-chan os.Signal) int {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			_ = syscall.Kill(-cmd.Process.Pid, sig.(syscall.Signal))
		case err := <-done:
			return exitCode(cmd, err)
		}
	}
}

func exitCode(cmd *exec.Cmd, err error) int {
	if err == nil {
		return 0
	}
	if cmd.ProcessState == nil {
		return 1
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return 1
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
