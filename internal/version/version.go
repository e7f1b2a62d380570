// Package version holds the build's version, set at link time by `make build`.
package version

// Version is overwritten with -ldflags "-X .../internal/version.Version=...".
var Version = "dev"
