package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/docshield/voice-worker/internal/version"
)

func cmdVersion(_ context.Context, e env, args []string) int {
	fs := newFlags(e, "version", "version")
	if code, done := parse(e, fs, args); done {
		return code
	}
	fmt.Fprintf(e.stdout, "worker %s (%s, %s/%s)\n", version.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
