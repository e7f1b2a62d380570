// Command devstack runs the local stack the worker needs (Redis, a MongoDB
// wire-protocol server, S3, LiveKit and LiveKit's SIP service) for
// `make dev` and `make test`, in a private network namespace holding only
// loopback and one dummy address (see netns.go). It lives in its own
// module so the worker binary does not carry FerretDB and friends.
//
//	devstack install                      build the Go servers into the cache
//	devstack up   [flags]                 start, write the env file, wait for Ctrl-C
//	devstack exec [flags] -- cmd args...  start, run cmd with the stack's env, stop
//	devstack enter [--env-file F] -- cmd  run cmd in a running `up` stack's namespace
//	devstack gotest --record F -- cmd...  run a `go test -json` command, print it like go test
//	devstack summary [--step N=ok] F...   print the closing test summary of recorded runs
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
)

const usage = `usage:
  devstack install
  devstack up   [--env-file path] [--dir path] [--without livekit,minio,...] [--mongo-backend sqlite|postgresql]
  devstack exec [--env-file path] [--dir path] [--without ...] [--mongo-backend ...] -- cmd args...
  devstack enter [--env-file path] -- cmd args...
  devstack gotest [--record file] -- cmd args...
  devstack summary [--step name=ok|fail]... record.json...

DEVSTACK_CPUPROFILE=path writes each devstack process's CPU profile (FerretDB
runs inside the stack's) to path.PID.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	if path := os.Getenv("DEVSTACK_CPUPROFILE"); path != "" {
		// Profiles devstack itself, FerretDB included: what the local
		// stack's MongoDB costs a benchmark.
		// One file per process: exec re-runs devstack inside the network
		// namespace, and both would write one path.
		stop, err := startCPUProfile(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			fmt.Fprintf(os.Stderr, "devstack: DEVSTACK_CPUPROFILE: %v\n", err)
			return 2
		}
		defer stop()
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "install":
		return runInstall(args)
	case "up":
		return runUp(args)
	case "exec":
		return runExec(args)
	case "enter":
		return runEnter(args)
	case "gotest":
		return runGoTest(args)
	case "summary":
		return runSummary(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "devstack: unknown command %q\n%s", cmd, usage)
		return 2
	}
}

// stackFlags are the flags shared by up and exec.
type stackFlags struct {
	envFile      string
	dir          string
	without      string
	mongoBackend string
}

func parseStackFlags(name string, args []string) (stackFlags, []string, error) {
	var f stackFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&f.envFile, "env-file", "", "where to write the KEY=VALUE env file (default <dir>/devstack.env)")
	fs.StringVar(&f.dir, "dir", "", "stack directory for data and logs (default: a new temporary directory, removed on a clean stop)")
	fs.StringVar(&f.without, "without", "", "comma-separated services not to start: "+strings.Join(serviceNames, ",")+" (sip needs redis and livekit)")
	fs.StringVar(&f.mongoBackend, "mongo-backend", cmp.Or(os.Getenv(mongoBackendVar), backendSQLite),
		"what FerretDB stores in: sqlite, or postgresql (Debian's PostgreSQL, started by devstack; default $"+mongoBackendVar+" or sqlite)")
	if err := fs.Parse(args); err != nil {
		return f, nil, err
	}
	if err := checkMongoBackend(f.mongoBackend); err != nil {
		fmt.Fprintf(fs.Output(), "devstack %s: %v\n", name, err)
		return f, nil, err
	}
	return f, fs.Args(), nil
}

func runInstall(args []string) int {
	if len(args) != 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, b := range builtServers {
		path, err := b.ensure(ctx, os.Stderr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "devstack install: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "devstack: %s %s ready at %s\n", b.name, b.version, path)
	}
	return 0
}

func runUp(args []string) int {
	if !inNetns() {
		sigs := notifySignals()
		defer signal.Stop(sigs)
		return runInNetns(append([]string{"up"}, args...), sigs)
	}
	f, rest, err := parseStackFlags("up", args)
	if err != nil {
		return 2
	}
	if len(rest) != 0 {
		fmt.Fprintf(os.Stderr, "devstack up: unexpected arguments %q (did you mean exec?)\n", rest)
		return 2
	}
	sigs := notifySignals()
	defer signal.Stop(sigs)

	st, err := startStack(f, sigs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack up: %v\n", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "devstack: press Ctrl-C to stop")
	sig := <-sigs
	fmt.Fprintf(os.Stderr, "devstack: %v, stopping\n", sig)
	st.stop(true)
	return 0
}

func runExec(args []string) int {
	if !inNetns() {
		sigs := notifySignals()
		defer signal.Stop(sigs)
		return runInNetns(append([]string{"exec"}, args...), sigs)
	}
	f, rest, err := parseStackFlags("exec", args)
	if err != nil {
		return 2
	}
	if len(rest) == 0 {
		fmt.Fprint(os.Stderr, "devstack exec: missing command after --\n", usage)
		return 2
	}
	sigs := notifySignals()
	defer signal.Stop(sigs)

	st, err := startStack(f, sigs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack exec: %v\n", err)
		return 1
	}
	env := mergeEnv(os.Environ(), append(st.env(), envVar{requireStackVar, "1"}))
	code := runChild(rest, env, sigs)
	st.stop(code == 0)
	return code
}

// requireStackVar makes internal/testenv fail instead of skip when a
// variable is missing, so a broken stack can never pass as skipped tests.
const requireStackVar = "DOCSHIELD_REQUIRE_STACK"

func notifySignals() chan os.Signal {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	return sigs
}

// startStack starts the selected services, aborting (and cleaning up) if a
// signal arrives before they are ready.
func startStack(f stackFlags, sigs <-chan os.Signal) (*stack, error) {
	if err := setupNetns(); err != nil {
		return nil, fmt.Errorf("private network namespace: %w", err)
	}
	svcs, err := selectServices(f.without, f.mongoBackend)
	if err != nil {
		return nil, err
	}
	st, err := newStack(f.dir, svcs)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	interrupted := make(chan os.Signal, 1)
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case sig := <-sigs:
			interrupted <- sig
			cancel()
		case <-ctx.Done():
		}
	}()
	err = st.start(ctx, f.envFile)
	cancel()
	<-watcherDone

	// A signal that raced with a successful start still means "stop".
	select {
	case sig := <-interrupted:
		if err == nil {
			st.stop(false)
		}
		return nil, fmt.Errorf("interrupted by %v during start", sig)
	default:
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// startCPUProfile writes this process's CPU profile to path until stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
