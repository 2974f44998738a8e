//go:build !faultinject

package app

// Fault injection points (build tag faultinject; see faultinject_on.go).
const faultPoller = "poller"

// injectFault does nothing in a normal build.
func injectFault(string) {}
