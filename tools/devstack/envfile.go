package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

type envVar struct{ Key, Value string }

// mergeEnv returns base with vars added, vars winning over base entries of
// the same name.
func mergeEnv(base []string, vars []envVar) []string {
	override := make(map[string]bool, len(vars))
	for _, v := range vars {
		override[v.Key] = true
	}
	out := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !override[k] {
			out = append(out, kv)
		}
	}
	for _, v := range vars {
		out = append(out, v.Key+"="+v.Value)
	}
	return out
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]*$`)

// shellQuote leaves plain values bare, so the file also reads as a plain
// KEY=VALUE file (docker --env-file, heroku local), and single-quotes the
// rest for `set -a; . file`.
func shellQuote(v string) string {
	if shellSafe.MatchString(v) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// formatEnv renders vars as KEY=VALUE lines.
func formatEnv(vars []envVar) string {
	var b strings.Builder
	b.WriteString("# Written by tools/devstack; valid while that devstack runs.\n")
	b.WriteString("# Use: set -a; . this-file; set +a\n")
	for _, v := range vars {
		fmt.Fprintf(&b, "%s=%s\n", v.Key, shellQuote(v.Value))
	}
	return b.String()
}

// writeEnvFile writes atomically and private to the user: it holds the
// stack's (throwaway) credentials.
func writeEnvFile(path string, vars []envVar) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".devstack-env-*")
	if err != nil {
		return fmt.Errorf("env file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(formatEnv(vars)); err != nil {
		tmp.Close()
		return fmt.Errorf("env file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("env file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("env file %s: %w", path, err)
	}
	return nil
}
