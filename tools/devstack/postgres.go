package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Mongo backends: what FerretDB stores its data in (--mongo-backend).
const (
	backendSQLite     = "sqlite"
	backendPostgreSQL = "postgresql"
)

// mongoBackendVar sets --mongo-backend's default, so make targets and CI
// choose the backend without changing every devstack command line.
const mongoBackendVar = "DEVSTACK_MONGO_BACKEND"

var mongoBackends = []string{backendSQLite, backendPostgreSQL}

// pgRoot is where Debian installs each PostgreSQL major version
// (/usr/lib/postgresql/15/bin/postgres); its binaries are not on PATH.
const pgRoot = "/usr/lib/postgresql"

// postgresService runs Debian's PostgreSQL for FerretDB's postgresql
// backend: a throwaway cluster of its own under the stack directory,
// listening on a spare loopback port and on a unix socket beside its data
// (FerretDB talks to it over the socket). PostgreSQL refuses to run as
// root, and devstack is root in its namespace, so initdb and the server
// run in a user namespace of their own, as an unprivileged user mapped to
// devstack's own uid (pgSysProcAttr): they own the files devstack
// created, and need no user made on the machine.
type postgresService struct {
	bin  string // the version's bin directory
	dir  string // <stack>/postgres: the socket, and the cluster in data/
	port int
	p    *proc
}

func (s *postgresService) name() string              { return "postgres" }
func (s *postgresService) logPath(dir string) string { return filepath.Join(dir, "postgres.log") }
func (s *postgresService) stop()                     { s.p.stopWith(syscall.SIGINT, stopGrace) } // fast shutdown
func (s *postgresService) env() []envVar             { return []envVar{{"DEVSTACK_POSTGRES_URL", s.url()}} }

func (s *postgresService) endpoint() string {
	return fmt.Sprintf("127.0.0.1:%d  (PostgreSQL %s, socket in %s)", s.port, filepath.Base(filepath.Dir(s.bin)), s.dir)
}

// url reaches the server through its socket, as the superuser initdb
// made, in the database initdb made.
func (s *postgresService) url() string {
	return fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", s.dir, s.port)
}

// pgBinDir returns the bin directory of the newest PostgreSQL installed.
func pgBinDir() (string, error) {
	found, _ := filepath.Glob(filepath.Join(pgRoot, "*", "bin", "postgres"))
	var best string
	bestVersion := -1
	for _, f := range found {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(f))))
		if err == nil && v > bestVersion {
			best, bestVersion = filepath.Dir(f), v
		}
	}
	if best == "" {
		return "", fmt.Errorf("no PostgreSQL under %s (Debian package postgresql-15; run scripts/install-deps.sh)", pgRoot)
	}
	return best, nil
}

// pgUser is who PostgreSQL runs as inside its user namespace: initdb
// looks its uid up in /etc/passwd, and nobody is there on every Debian.
const pgUser = "nobody"

// pgSysProcAttr runs a PostgreSQL binary as pgUser in a new user
// namespace that maps pgUser to devstack's own uid and gid (what an
// unprivileged process may map, so it works as root and as not). The
// network namespace stays devstack's.
func pgSysProcAttr() (*syscall.SysProcAttr, error) {
	u, err := user.Lookup(pgUser)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL runs as %s, which is not in /etc/passwd: %w", pgUser, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %s: %w", pgUser, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %s has uid 0, and PostgreSQL refuses root", pgUser)
	}
	return &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: os.Getegid(), Size: 1}},
		Credential:  &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true},
	}, nil
}

// pgSettings make a test cluster: nothing is kept past the stack, so no
// write waits for the disk (fsync, synchronous_commit and full-page
// writes off: a crash of the machine, never of the server, loses data).
var pgSettings = []string{
	"listen_addresses=127.0.0.1",
	"fsync=off",
	"synchronous_commit=off",
	"full_page_writes=off",
	// FerretDB's pool holds up to 50; psql and tests get the rest.
	"max_connections=100",
}

func (s *postgresService) start(ctx context.Context, dir string) error {
	bin, err := pgBinDir()
	if err != nil {
		return err
	}
	s.bin, s.dir = bin, filepath.Join(dir, "postgres")
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("postgres dir: %w", err)
	}
	// A --dir reused from an earlier run keeps its cluster.
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := s.initdb(ctx, dir, data); err != nil {
			return err
		}
	}
	return retryOnClash(ctx, func() error {
		if s.port, err = freePort(); err != nil {
			return err
		}
		attr, err := pgSysProcAttr()
		if err != nil {
			return err
		}
		args := []string{"-D", data, "-k", s.dir, "-p", strconv.Itoa(s.port)}
		for _, kv := range pgSettings {
			args = append(args, "-c", kv)
		}
		s.p, err = startProcAttr("postgres", s.logPath(dir), nil, attr, filepath.Join(bin, "postgres"), args...)
		if err != nil {
			return err
		}
		if err := s.p.waitReady(ctx, readyTimeout, s.ready); err != nil {
			s.stop()
			return err
		}
		return nil
	})
}

// initdb makes the cluster: UTF-8 (FerretDB stores documents as jsonb),
// the C locale (no locale need be installed), and a superuser named
// postgres trusted on the socket and loopback alone.
func (s *postgresService) initdb(ctx context.Context, dir, data string) error {
	attr, err := pgSysProcAttr()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(s.logPath(dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("postgres log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	attr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr = attr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb %s: %w", data, err)
	}
	return nil
}

// ready connects through the socket, which lives in our own directory, so
// the server answering is ours; it accepts sessions once recovery is done.
func (s *postgresService) ready(ctx context.Context) error {
	conn, err := pgconn.Connect(ctx, s.url())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
	return err
}

// checkMongoBackend names the flag in the error, as bad input must.
func checkMongoBackend(b string) error {
	if !slices.Contains(mongoBackends, b) {
		return fmt.Errorf("--mongo-backend (or %s): %q is not one of %v", mongoBackendVar, b, mongoBackends)
	}
	return nil
}
