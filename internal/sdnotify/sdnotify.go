// Package sdnotify tells systemd about the agent's state over the
// sd_notify protocol (a datagram to the unix socket named in NOTIFY_SOCKET),
// for a unit with Type=notify and WatchdogSec= (scripts/hazmon.service).
//
// It wraps github.com/coreos/go-systemd/v22/daemon. Every call is a no-op
// returning nil when NOTIFY_SOCKET is unset (run by hand, in tests, under
// another supervisor). The environment is read on each call and never
// changed, so the watchdog keeps working after Ready.
package sdnotify

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready sends READY=1: start-up (or a reload) is finished. With Type=notify
// systemd holds the unit in "activating" until it arrives and fails the
// start after TimeoutStartSec. The error is from the socket (the daemon
// is gone or NOTIFY_SOCKET names a missing socket).
func Ready() error { return send(daemon.SdNotifyReady) }

// Reloading sends RELOADING=1 with MONOTONIC_USEC, as systemd (v253+)
// expects on a SIGHUP reload; call Ready when the new config is in force.
func Reloading() error {
	return send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// Stopping sends STOPPING=1: a clean shutdown has begun (systemd then
// waits up to TimeoutStopSec instead of treating the exit as a crash).
func Stopping() error { return send(daemon.SdNotifyStopping) }

// Watchdog sends WATCHDOG=1, resetting the unit's WatchdogSec timer. If no
// ping arrives within WatchdogSec, systemd kills the agent with SIGABRT and
// (Restart=on-failure) starts it again.
func Watchdog() error { return send(daemon.SdNotifyWatchdog) }

// WatchdogInterval returns the unit's watchdog timeout (WATCHDOG_USEC,
// microseconds) and true when systemd expects pings from this process:
// WATCHDOG_USEC is set to a positive number and WATCHDOG_PID, if set, is
// this process's pid. Otherwise it returns 0, false.
func WatchdogInterval() (time.Duration, bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// Run pings the watchdog every interval/2 until ctx ends, then returns.
// interval is the watchdog timeout (from WatchdogInterval); Run returns at
// once if it is not positive. The caller owns the goroutine running Run and
// waits for it. A failed ping is not fatal here: the next tick tries again,
// and if pings keep failing systemd's watchdog restarts the agent, which is
// what it is for.
func Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	_ = Watchdog()
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = Watchdog()
		}
	}
}

func send(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}
