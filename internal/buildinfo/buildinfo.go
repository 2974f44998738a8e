// Package buildinfo carries the version stamped into the binary at link time
// (make build sets them with -ldflags -X).
package buildinfo

import "runtime"

// Set by the linker: -X github.com/hazmon/hazmon/internal/buildinfo.version=v0.1.0
// and .commit=<git sha>. They are never written at run time.
var (
	version = "dev"
	commit  = "unknown"
)

// Version is the release version, "dev" for an unstamped build.
func Version() string { return version }

// Commit is the git commit the binary was built from.
func Commit() string { return commit }

// String is the one-line form printed by `hazmon version`.
func String() string {
	return "hazmon " + version + " (commit " + commit + ", " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}
