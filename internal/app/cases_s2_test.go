package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// smallDisk mounts a tmpfs of size bytes (a small SD card) and unmounts it
// when the test ends. It skips the test where mounting is not permitted.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root / CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file into dir until the filesystem returns ENOSPC and
// returns its path; removing it frees the space again.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill disk: %v", err)
			}
			break
		}
	}
	for { // the last partial pages
		if _, err := f.Write(chunk[:512]); err != nil {
			break
		}
	}
	return p
}

// logTap keeps the agent's log records of level Error and above.
type logTap struct {
	mu   sync.Mutex
	recs []string
}

func (l *logTap) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *logTap) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logTap) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logTap) WithGroup(string) slog.Handler      { return l }

func (l *logTap) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if strings.Contains(r, sub) {
			n++
		}
	}
	return n
}

// S2: a full disk (ENOSPC) never stops polling or rules. The agent's
// data_dir is a real 40 MiB tmpfs (above the buffer's 32 MiB free-space
// reserve, so the buffer starts normally); with the broker absent and 10
// sensors polled every 20 ms (500 readings/s) the disk is then filled to
// ENOSPC by another writer. Asserted: the buffer's commits fail with the
// real ENOSPC and the agent reports it (error log "no space left on
// device", the buffer's Health degraded; records held in memory, none
// refused); polling goes on (new sample
// times keep arriving at the control backend's last readings, the slave
// keeps serving requests); the methane cut-off still de-energises the
// breaker coil on the Modbus slave and restores it; Run returns cleanly.
// Once the space is freed the buffer is healthy again. Not scaled in
// kind: the disk and the error are real; only its size is small.
func TestCases_S2FullDiskKeepsPollingAndRules(t *testing.T) {
	disk := smallDisk(t, "40m")
	bank := mbslave.NewBank()
	bank.SetHolding(1, 0, 50) // 0.50 %CH4
	bank.SetCoil(1, 100, false)
	addr := mbslavetest.StartTCP(t, bank)
	var sb strings.Builder
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&sb, "  - {id: T-%d, type: temperature, bus: plc, slave: 1, table: holding, address: %d, unit: degC, interval: 20ms, range: [0, 1000]}\n", i, 10*i)
	}
	cfg := loadConfig(t, fmt.Sprintf(`agent: {id: gw-s2, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://127.0.0.1:%d"], connect_timeout: 300ms}
control: {socket: %s}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 300ms}
outputs:
  - {name: breaker-3, modbus: {bus: plc, slave: 1, coil: 100}}
sensors:
  - {id: CH4-101, type: methane, bus: plc, slave: 1, table: holding, address: 0, scale: 0.01, unit: "%%CH4",
     interval: 20ms, range: [0, 4], location: coal_face, cut_outputs: [breaker-3]}
%s`, disk, freePort(t), filepath.Join(t.TempDir(), "h.sock"), addr, sb.String()))

	tap := &logTap{}
	a, err := New(cfg, Options{Logger: slog.New(tap)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitRunning(t, a, done)
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()
	waitFor(t, 10*time.Second, "breaker energised", func() bool { return bank.Coil(1, 100) })

	filler := fillDisk(t, disk)
	// The buffer's commits fail with ENOSPC: it says so (log, Health) and
	// holds the records in memory instead of refusing them.
	waitFor(t, 30*time.Second, "an ENOSPC from the buffer reported", func() bool {
		ok, _ := a.buffer().Health()
		return tap.count("no space left on device") > 0 && !ok
	})
	_, why := a.buffer().Health()
	t.Logf("disk full: %d error log records; buffer: %s", tap.count("no space left on device"), why)

	// Polling goes on with the disk full.
	lastTS := func() time.Time {
		r, ok := lastReading(a, "T-5")
		if !ok {
			t.Fatal("no reading of T-5")
		}
		return r.Time
	}
	t0, req0 := lastTS(), bank.Requests(1)
	waitFor(t, 10*time.Second, "new samples while the disk is full", func() bool {
		return lastTS().Sub(t0) > 500*time.Millisecond && bank.Requests(1) > req0+100
	})
	// Rules act on the coil with the disk full.
	bank.SetHolding(1, 0, 160) // 1.60 %CH4: above the 1.5 cut-off
	waitFor(t, 10*time.Second, "breaker cut with the disk full", func() bool { return !bank.Coil(1, 100) })
	bank.SetHolding(1, 0, 40)
	waitFor(t, 10*time.Second, "breaker restored with the disk full", func() bool { return bank.Coil(1, 100) })
	if ok, _ := a.buffer().Health(); ok {
		t.Fatal("the buffer says it is healthy: the disk never filled")
	}

	// Space returns: the buffer writes what memory held and is healthy
	// again; no record was refused meanwhile.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the buffer healthy again", func() bool { ok, _ := a.buffer().Health(); return ok })
	if n := a.appendErrs.Load(); n != 0 {
		t.Fatalf("%d records not stored: a full disk must hold them in memory", n)
	}
	select {
	case err := <-done:
		t.Fatalf("agent stopped on a full disk: %v", err)
	default:
	}
}
