package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// listen opens a real unixgram socket, as systemd does, and points
// NOTIFY_SOCKET at it. The path is kept short: sun_path holds 108 bytes
// and t.TempDir() can exceed that.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no datagram on NOTIFY_SOCKET: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyStates(t *testing.T) {
	c := listen(t)
	for _, tc := range []struct {
		name string
		send func() error
		want string
	}{
		{"ready", Ready, "READY=1"},
		{"watchdog", Watchdog, "WATCHDOG=1"},
		{"stopping", Stopping, "STOPPING=1"},
	} {
		if err := tc.send(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := recv(t, c); got != tc.want {
			t.Fatalf("%s: socket got %q, want %q", tc.name, got, tc.want)
		}
	}
	// The environment is left in place: a later watchdog ping still works.
	if os.Getenv("NOTIFY_SOCKET") == "" {
		t.Fatal("NOTIFY_SOCKET was unset by a notify call")
	}
}

func TestReloadingCarriesMonotonicTime(t *testing.T) {
	c := listen(t)
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	got := recv(t, c)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("got %q, want RELOADING=1 and MONOTONIC_USEC=<n>", got)
	}
	if us, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64); err != nil || us == 0 {
		t.Fatalf("MONOTONIC_USEC in %q: %v", got, err)
	}
}

func TestNoSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for name, f := range map[string]func() error{"ready": Ready, "watchdog": Watchdog, "stopping": Stopping, "reloading": Reloading} {
		if err := f(); err != nil {
			t.Errorf("%s without NOTIFY_SOCKET: %v, want nil", name, err)
		}
	}
}

func TestMissingSocketIsError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	err := Ready()
	if err == nil || !strings.Contains(err.Error(), `sd_notify "READY=1"`) {
		t.Fatalf("Ready to a missing socket: %v, want a wrapped error", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, usec, pid string
		want            time.Duration
		ok              bool
	}{
		{"unit_30s", "30000000", me, 30 * time.Second, true},
		{"no_pid", "15000000", "", 15 * time.Second, true},
		{"other_pid", "30000000", strconv.Itoa(os.Getpid() + 1), 0, false},
		{"unset", "", "", 0, false},
		{"garbage", "30s", "", 0, false},
		{"zero", "0", "", 0, false},
		{"negative", "-5", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			got, ok := WatchdogInterval()
			if got != tc.want || ok != tc.ok {
				t.Fatalf("WatchdogInterval() = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestRunPingsUntilCancelled(t *testing.T) {
	c := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		Run(ctx, 200*time.Millisecond) // pings every 100ms
	}()
	// One ping at once and more on each tick: wait for three.
	for i := 0; i < 3; i++ {
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Fatalf("ping %d: got %q, want WATCHDOG=1", i, got)
		}
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	// Drain what was in flight, then no more pings may come.
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 64)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("ping %q after Run returned", buf[:n])
	}
}

func TestRunWithoutIntervalReturns(t *testing.T) {
	done := make(chan struct{})
	go func() { Run(context.Background(), 0); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run(ctx, 0) did not return at once")
	}
}
