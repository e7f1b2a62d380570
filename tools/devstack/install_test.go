package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The shared build scripts sit beside the clone (CI) or beside the
// worktrees, found from anywhere inside the clone.
func TestThirdPartyScriptIsFoundBesideTheClone(t *testing.T) {
	root := t.TempDir()
	clone := filepath.Join(root, "voice-worker")
	script := filepath.Join(root, "shared", "thirdparty", "build-livekit-sip.sh")
	require.NoError(t, os.MkdirAll(filepath.Join(clone, "tools", "devstack"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(clone, "tools", "devstack", "go.mod"), []byte("module x\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Dir(script), 0o755))
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755))
	t.Setenv(thirdPartyVar, "")

	t.Chdir(filepath.Join(clone, "tools", "devstack"))
	got, err := thirdPartyScript("build-livekit-sip.sh")
	require.NoError(t, err)
	require.Equal(t, script, got)

	_, err = thirdPartyScript("missing.sh")
	require.ErrorContains(t, err, "missing.sh not found beside the clone")

	t.Setenv(thirdPartyVar, "/elsewhere")
	got, err = thirdPartyScript("build-livekit-sip.sh")
	require.NoError(t, err)
	require.Equal(t, "/elsewhere/build-livekit-sip.sh", got)
}
