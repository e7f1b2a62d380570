package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// builtServer is a server built from source with `go install`, because the
// machines reach the Go module proxy but no binary downloads. Builds take
// minutes, so each version is built once into the cache.
type builtServer struct {
	name    string // cache directory prefix and --without name
	pkg     string
	version string
	binary  string // file name go install produces
}

var (
	minioServer = builtServer{
		name:    "minio",
		pkg:     "github.com/minio/minio",
		version: "v0.0.0-20260212201848-7aac2a2c5b7c",
		binary:  "minio",
	}
	// LiveKit v1.13.11 and newer do not build from the proxy (their go.mod
	// replaces pion with forks it refuses).
	livekitServer = builtServer{
		name:    "livekit",
		pkg:     "github.com/livekit/livekit-server/cmd/server",
		version: "v1.13.5",
		binary:  "server",
	}
	builtServers = []builtServer{minioServer, livekitServer}
)

// cacheDir is $DOCSHIELD_CACHE or ~/.cache/docshield; it outlives clones,
// so CI on a reused machine skips the builds.
func cacheDir() (string, error) {
	if d := os.Getenv("DOCSHIELD_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: set DOCSHIELD_CACHE or HOME: %w", err)
	}
	return filepath.Join(home, ".cache", "docshield"), nil
}

func (b builtServer) path(cache string) string {
	return filepath.Join(cache, "bin", b.name+"-"+b.version, b.binary)
}

// ensure returns the cached binary, building it first if it is missing.
// The build goes to a temporary GOBIN and is renamed into place, so an
// interrupted build never leaves a half binary that looks cached.
func (b builtServer) ensure(ctx context.Context, out io.Writer) (string, error) {
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	final := b.path(cache)
	if fi, err := os.Stat(final); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return final, nil
	}

	binDir := filepath.Join(cache, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("cache dir %s: %w", binDir, err)
	}
	tmp, err := os.MkdirTemp(binDir, ".build-"+b.name+"-")
	if err != nil {
		return "", fmt.Errorf("cache dir %s: %w", binDir, err)
	}
	defer os.RemoveAll(tmp)

	fmt.Fprintf(out, "devstack: building %s@%s (a few minutes, once per machine)\n", b.pkg, b.version)
	began := time.Now()
	cmd := exec.CommandContext(ctx, "go", "install", b.pkg+"@"+b.version)
	cmd.Env = mergeEnv(os.Environ(), []envVar{{"GOBIN", tmp}})
	cmd.Stdout, cmd.Stderr = out, out
	// Kill the compiler processes too when interrupted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w", b.pkg, b.version, err)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, b.binary), final); err != nil {
		return "", fmt.Errorf("install %s into cache: %w", b.name, err)
	}
	fmt.Fprintf(out, "devstack: built %s in %s -> %s\n", b.name, time.Since(began).Round(time.Second), final)
	return final, nil
}

// builtService is a service whose server comes from the build cache.
type builtService interface {
	server() builtServer
	setBinary(path string)
}

func ensureBinaries(ctx context.Context, svcs []service) error {
	for _, svc := range svcs {
		bs, ok := svc.(builtService)
		if !ok {
			continue
		}
		path, err := bs.server().ensure(ctx, os.Stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", svc.name(), err)
		}
		bs.setBinary(path)
	}
	return nil
}
