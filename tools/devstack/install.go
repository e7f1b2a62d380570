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
	// fallback builds the binary to out when go install fails (the proxy
	// refuses the module); nil: no other way.
	fallback func(ctx context.Context, log io.Writer, out string) error
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
	// LiveKit's SIP service. The proxy refuses github.com/livekit/sip and the
	// untagged livekit/protocol and media-sdk versions it pins, so go install
	// fails fast here and the fallback builds the same commit (be5d3f5, two
	// commits after v1.11.0) from the archives in ../shared/thirdparty. The
	// version is still tried first, so the usual route works wherever the
	// module is served.
	sipServer = builtServer{
		name:     "sip",
		pkg:      "github.com/livekit/sip/cmd/livekit-sip",
		version:  "v1.11.1-0.20260821164232-be5d3f572761",
		binary:   "livekit-sip",
		fallback: buildSIPFromArchives,
	}
	builtServers = []builtServer{minioServer, livekitServer, sipServer}
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
	built := filepath.Join(tmp, b.binary)
	err = runBuild(ctx, out, []envVar{{"GOBIN", tmp}}, "go", "install", b.pkg+"@"+b.version)
	if err != nil && b.fallback != nil && ctx.Err() == nil {
		fmt.Fprintf(out, "devstack: go install %s@%s failed (%v); building it from the fallback sources\n", b.pkg, b.version, err)
		err = b.fallback(ctx, out, built)
	}
	if err != nil {
		return "", fmt.Errorf("build %s@%s: %w", b.pkg, b.version, err)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	if err := os.Rename(built, final); err != nil {
		return "", fmt.Errorf("install %s into cache: %w", b.name, err)
	}
	fmt.Fprintf(out, "devstack: built %s in %s -> %s\n", b.name, time.Since(began).Round(time.Second), final)
	return final, nil
}

// runBuild runs a build command with env added, its output to log. On
// cancellation the whole process group goes, compilers included.
func runBuild(ctx context.Context, log io.Writer, env []envVar, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = mergeEnv(os.Environ(), env)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd.Run()
}

// buildSIPFromArchives runs ../shared/thirdparty/build-livekit-sip.sh,
// which builds livekit-sip from the source archives beside it.
func buildSIPFromArchives(ctx context.Context, log io.Writer, out string) error {
	script, err := thirdPartyScript("build-livekit-sip.sh")
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "devstack: %s (about 3 CPU-minutes and 1.25 GB of memory)\n", script)
	return runBuild(ctx, log, nil, "bash", script, out)
}

// thirdPartyVar names the directory holding the shared build scripts and
// source archives, when it is not ../shared/thirdparty beside the clone.
const thirdPartyVar = "DOCSHIELD_THIRDPARTY"

// thirdPartyScript finds a script of ../shared/thirdparty: the shared
// directory sits beside the repository's clone (CI) or beside the
// worktrees. The clone is found by walking up from the working directory,
// then from this binary (tools/bin/devstack).
func thirdPartyScript(name string) (string, error) {
	if d := os.Getenv(thirdPartyVar); d != "" {
		return filepath.Join(d, name), nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for ; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "tools", "devstack", "go.mod")); err == nil {
				p := filepath.Join(filepath.Dir(dir), "shared", "thirdparty", name)
				if _, err := os.Stat(p); err != nil {
					return "", fmt.Errorf("%s not found beside the clone %s (set %s): %w", name, dir, thirdPartyVar, err)
				}
				return p, nil
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	return "", fmt.Errorf("%s: cannot find the repository clone from here; set %s to the shared thirdparty directory", name, thirdPartyVar)
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
