package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// service is one server of the stack.
type service interface {
	name() string
	// start returns once the server answers. On error it has already
	// stopped whatever it started.
	start(ctx context.Context, dir string) error
	// stop is called once, only after a successful start.
	stop()
	env() []envVar
	// endpoint is shown in the summary; never a secret.
	endpoint() string
	// logPath is tailed when start fails.
	logPath(dir string) string
}

// dependent is a service that starts only once others are ready.
type dependent interface {
	// after names the services that must be ready first.
	after() []string
}

// serviceNames are the names --without accepts, in start order.
var serviceNames = []string{"redis", "mongo", "minio", "livekit", "sip"}

// readyTimeout bounds each server's start; generous for a busy 2-core CI box.
const readyTimeout = 2 * time.Minute

// stopGrace is how long a server gets after SIGTERM before SIGKILL.
const stopGrace = 15 * time.Second

// selectServices picks the services to start; backend is FerretDB's
// (--mongo-backend), and postgresql starts PostgreSQL before it.
func selectServices(without, backend string) ([]service, error) {
	if err := checkMongoBackend(backend); err != nil {
		return nil, err
	}
	skip := map[string]bool{}
	for _, n := range strings.Split(without, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if n == "ferretdb" {
			n = "mongo"
		}
		if !slices.Contains(serviceNames, n) {
			return nil, fmt.Errorf("--without: unknown service %q (known: %s)", n, strings.Join(serviceNames, ", "))
		}
		skip[n] = true
	}
	// LiveKit reaches the SIP service over Redis, so each gets the others
	// it talks to; a skipped one stays nil.
	var (
		redis   *redisService
		livekit *livekitService
		svcs    []service
	)
	for _, n := range serviceNames {
		if skip[n] {
			continue
		}
		switch n {
		case "redis":
			redis = &redisService{}
			svcs = append(svcs, redis)
		case "mongo":
			m := &mongoService{}
			if backend == backendPostgreSQL {
				m.pg = &postgresService{}
				svcs = append(svcs, m.pg)
			}
			svcs = append(svcs, m)
		case "minio":
			svcs = append(svcs, &minioService{})
		case "livekit":
			livekit = &livekitService{redis: redis}
			svcs = append(svcs, livekit)
		case "sip":
			if redis == nil || livekit == nil {
				return nil, errors.New("--without: sip needs redis and livekit; add sip to --without")
			}
			svcs = append(svcs, &sipService{redis: redis, livekit: livekit})
		}
	}
	return svcs, nil
}

// stack owns the services of one devstack run and the directory holding
// their data and logs.
type stack struct {
	dir     string
	ownDir  bool // created by us, so removed after a clean stop
	envFile string
	svcs    []service
}

func newStack(dir string, svcs []service) (*stack, error) {
	st := &stack{dir: dir, svcs: svcs}
	if dir == "" {
		d, err := os.MkdirTemp("", "docshield-devstack-")
		if err != nil {
			return nil, fmt.Errorf("stack dir: %w", err)
		}
		st.dir, st.ownDir = d, true
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("--dir %s: %w", dir, err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("--dir %s: %w", dir, err)
		}
		st.dir = abs
	}
	return st, nil
}

// start brings all services up in parallel (a warm start is as slow as
// the slowest chain of servers, not the sum: each waits only for those it
// needs), then writes the env file. If any service fails, the others are
// cancelled and stopped.
func (st *stack) start(ctx context.Context, envFile string) error {
	began := time.Now()
	if err := ensureBinaries(ctx, st.svcs); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(st.svcs))
	ready := make(map[string]chan struct{}, len(st.svcs))
	for _, svc := range st.svcs {
		ready[svc.name()] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for i, svc := range st.svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := waitFor(ctx, svc, ready)
			if err == nil {
				err = svc.start(ctx, st.dir)
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", svc.name(), err)
				cancel()
				return
			}
			close(ready[svc.name()])
		}()
	}
	wg.Wait()

	var failed []error
	for i, err := range errs {
		if err == nil {
			continue
		}
		failed = append(failed, err)
		// Services cancelled because another failed have nothing to show.
		if !errors.Is(err, context.Canceled) {
			svc := st.svcs[i]
			fmt.Fprintf(os.Stderr, "devstack: %s failed to start: %v\n--- last lines of %s ---\n%s\n---\n",
				svc.name(), err, svc.logPath(st.dir), logTail(svc.logPath(st.dir), 30))
		}
	}
	if len(failed) > 0 {
		for i := len(st.svcs) - 1; i >= 0; i-- {
			if errs[i] == nil {
				st.svcs[i].stop()
			}
		}
		fmt.Fprintf(os.Stderr, "devstack: logs kept in %s\n", st.dir)
		return errors.Join(failed...)
	}

	st.envFile = envFile
	if st.envFile == "" {
		st.envFile = filepath.Join(st.dir, "devstack.env")
	}
	if err := writeEnvFile(st.envFile, st.env()); err != nil {
		st.stop(false)
		return err
	}
	st.printSummary(time.Since(began))
	return nil
}

// waitFor returns once the services svc starts after are ready, or ctx
// ends (a dependency failed, or the start was interrupted).
func waitFor(ctx context.Context, svc service, ready map[string]chan struct{}) error {
	d, ok := svc.(dependent)
	if !ok {
		return nil
	}
	for _, name := range d.after() {
		ch, ok := ready[name]
		if !ok {
			return fmt.Errorf("needs %s, which is not started", name)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stop stops the services in reverse start order. clean says whether the
// run went well; only then is a directory we created removed, so logs
// survive failures. The env file goes either way: it points at servers
// that no longer run.
func (st *stack) stop(clean bool) {
	for i := len(st.svcs) - 1; i >= 0; i-- {
		st.svcs[i].stop()
	}
	if st.envFile != "" {
		_ = os.Remove(st.envFile)
	}
	if !clean || !st.ownDir {
		fmt.Fprintf(os.Stderr, "devstack: stopped; data and logs in %s\n", st.dir)
		return
	}
	if err := os.RemoveAll(st.dir); err != nil {
		fmt.Fprintf(os.Stderr, "devstack: remove %s: %v\n", st.dir, err)
	}
	fmt.Fprintln(os.Stderr, "devstack: stopped")
}

// env is what the worker's config and internal/testenv read.
func (st *stack) env() []envVar {
	vars := []envVar{{"APP_ENV", "development"}}
	for _, svc := range st.svcs {
		vars = append(vars, svc.env()...)
	}
	return append(vars,
		envVar{"DEVSTACK_DIR", st.dir},
		// The media address inside the namespace, and the process holding
		// it (for `devstack enter`).
		envVar{"DEVSTACK_NETNS_ADDR", netnsAddr},
		envVar{pidVar, strconv.Itoa(os.Getpid())},
	)
}

func (st *stack) printSummary(took time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "devstack: ready in %.1fs\n", took.Seconds())
	for _, svc := range st.svcs {
		fmt.Fprintf(&b, "  %-8s %s\n", svc.name(), svc.endpoint())
	}
	fmt.Fprintf(&b, "  %-8s %s\n", "logs", st.dir)
	// The servers are reachable only from inside the stack's namespace.
	fmt.Fprintf(&b, "  %-8s %s  (devstack enter --env-file %s -- CMD)\n", "env file", st.envFile, st.envFile)
	fmt.Fprint(os.Stderr, b.String())
}
