package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// No Docker engine runs in CI, so the Dockerfile is checked by running its
// build stage's steps here: its apt packages must be the ones
// scripts/install-deps.sh installs for every build, and its exact `go
// build` command must produce a working binary.

type dockerStage struct {
	name  string
	instr [][2]string // instruction, arguments
}

func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	joined := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), " ")
	var stages []dockerStage
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		instr = strings.ToUpper(instr)
		if instr == "FROM" {
			name := ""
			if f := strings.Fields(args); len(f) == 3 && strings.EqualFold(f[1], "AS") {
				name = f[2]
			}
			stages = append(stages, dockerStage{name: name})
		}
		require.NotEmpty(t, stages, "instruction before FROM: %s", line)
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, [2]string{instr, args})
	}
	return stages
}

func aptPackages(cmd string) []string {
	m := regexp.MustCompile(`apt-get install -y (?:--no-install-recommends )?([a-z0-9 .+-]+?)(?:&&|$)`).FindStringSubmatch(cmd)
	if m == nil {
		return nil
	}
	return strings.Fields(m[1])
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, "../../Dockerfile")
	require.Len(t, stages, 2, "multi-stage: build, then a slim runtime")
	build, runtime := stages[0], stages[1]

	deps, err := os.ReadFile("../../scripts/install-deps.sh")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^packages=\(([^)]*)\)`).FindSubmatch(deps)
	require.NotNil(t, m, "install-deps.sh lists its packages in packages=(...)")
	installed := strings.Fields(string(m[1]))
	var goBuild string
	for _, in := range build.instr {
		if in[0] != "RUN" {
			continue
		}
		for _, p := range aptPackages(in[1]) {
			require.Contains(t, installed, p, "the image builds with %s; CI must install it too", p)
		}
		if strings.Contains(in[1], "go build") {
			goBuild = in[1]
		}
	}
	require.NotEmpty(t, goBuild, "build stage has a go build step")

	var user, entrypoint, cmd string
	var runtimePkgs []string
	for _, in := range runtime.instr {
		switch in[0] {
		case "USER":
			user = in[1]
		case "ENTRYPOINT":
			entrypoint = in[1]
		case "CMD":
			cmd = in[1]
		case "RUN":
			runtimePkgs = append(runtimePkgs, aptPackages(in[1])...)
		}
	}
	require.NotEmpty(t, user)
	require.False(t, strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root"), "runs as non-root, got USER %s", user)
	// No ENTRYPOINT, so `heroku run bash` runs bash; the dyno runs CMD in
	// exec form, the binary as PID 1 (SIGTERM reaches it).
	require.Empty(t, entrypoint, "an ENTRYPOINT would make `heroku run bash` run the binary with bash as its argument")
	require.Equal(t, `["/app/bin/worker", "run"]`, cmd)
	for _, lib := range []string{"ca-certificates", "libopus0", "libopusfile0", "libsoxr0"} {
		require.Contains(t, runtimePkgs, lib)
	}
	for _, p := range runtimePkgs {
		require.False(t, strings.HasSuffix(p, "-dev"), "runtime image carries only shared libraries, not %s", p)
	}

	// Run the image's own go build line from the repository root.
	out := t.TempDir()
	cmdline := strings.ReplaceAll(goBuild, "/out/", out+"/")
	cmdline = strings.ReplaceAll(cmdline, "${VERSION}", "dockerfile-test")
	sh := exec.Command("sh", "-c", cmdline)
	sh.Dir = "../.."
	b, err := sh.CombinedOutput()
	require.NoError(t, err, "%s\n%s", cmdline, b)
	v, err := exec.Command(filepath.Join(out, "worker"), "version").Output()
	require.NoError(t, err)
	require.Contains(t, string(v), "worker dockerfile-test")
}
