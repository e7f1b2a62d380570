package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
)

// pidVar names the process that holds the stack's namespace, so `devstack
// enter` can join it.
const pidVar = "DEVSTACK_PID"

// runEnter runs a command inside the namespace of a stack that `devstack
// up` keeps running, with the stack's env file loaded: the servers are
// reachable only from inside. Joining a user namespace needs a
// single-threaded process, so util-linux's nsenter does it.
func runEnter(args []string) int {
	fs := flag.NewFlagSet("enter", flag.ContinueOnError)
	envFile := fs.String("env-file", ".devstack.env", "the env file `devstack up` wrote")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(os.Stderr, "devstack enter: missing command after --\n", usage)
		return 2
	}
	pid, err := stackPID(*envFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack enter: %v\n", err)
		return 1
	}
	argv := []string{"nsenter", "--target", strconv.Itoa(pid), "--net"}
	if sameNS, err := sameUserNS(pid); err != nil {
		fmt.Fprintf(os.Stderr, "devstack enter: is the stack still running? %v\n", err)
		return 1
	} else if !sameNS {
		// Our uid is the one the namespace maps to its root; setgroups is
		// denied in it, so nsenter must not switch credentials.
		argv = append(argv, "--user", "--preserve-credentials")
	}
	// The shell loads the env file the way the README tells users to.
	argv = append(argv, "--", "sh", "-c", `set -a; . "$0"; set +a; exec "$@"`, *envFile)
	argv = append(argv, fs.Args()...)
	sigs := notifySignals()
	defer signal.Stop(sigs)
	return runChild(argv, os.Environ(), sigs)
}

// stackPID reads DEVSTACK_PID from an env file devstack wrote.
func stackPID(envFile string) (int, error) {
	f, err := os.Open(envFile)
	if err != nil {
		return 0, fmt.Errorf("%w (is `devstack up` running?)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), pidVar+"="); ok {
			pid, err := strconv.Atoi(v)
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("%s: bad %s %q", envFile, pidVar, v)
			}
			return pid, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", envFile, err)
	}
	return 0, fmt.Errorf("%s has no %s", envFile, pidVar)
}

// sameUserNS reports whether pid shares our user namespace (root may
// have made the stack without one); nsenter refuses to join its own.
func sameUserNS(pid int) (bool, error) {
	ours, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return false, err
	}
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		return false, err
	}
	return ours == theirs, nil
}
