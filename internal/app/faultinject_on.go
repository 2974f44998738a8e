//go:build faultinject

package app

import (
	"os"
	"strings"
	"sync"
	"time"
)

// Fault injection points, for the fault-injection tests' build of the
// agent (go build -tags faultinject). HAZMON_FAULT="panic:poller:2s" makes
// the first poller goroutine that delivers a reading 2 s after start
// panic: the test then checks that every output is cut before the process
// exits.
const faultPoller = "poller"

var (
	faultOnce  sync.Once
	faultSite  string
	faultAfter time.Time
	faultFired sync.Once
)

func injectFault(site string) {
	faultOnce.Do(func() {
		parts := strings.Split(os.Getenv("HAZMON_FAULT"), ":")
		if len(parts) == 3 && parts[0] == "panic" {
			if d, err := time.ParseDuration(parts[2]); err == nil {
				faultSite, faultAfter = parts[1], time.Now().Add(d)
			}
		}
	})
	if site != faultSite || faultAfter.IsZero() || time.Now().Before(faultAfter) {
		return
	}
	faultFired.Do(func() { panic("injected fault: panic in a " + site + " goroutine (HAZMON_FAULT)") })
}
