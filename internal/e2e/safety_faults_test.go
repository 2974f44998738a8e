package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/safety"
)

// newConfig is the default agent of a safety fault test on s.
func newConfig(t *testing.T, s *safetySite) safetyConfig {
	dir := t.TempDir()
	return safetyConfig{DataDir: filepath.Join(dir, "data"), Socket: filepath.Join(dir, "h.sock"), Broker: s.broker.URL, Addr: s.addr}
}

// fullPipe returns the write end of a pipe whose buffer is already full
// and that nobody reads: every write to it blocks, as stderr does when
// journald is stuck behind a slow SD card. The read end is kept open (so
// writes block rather than fail) until the test ends.
func fullPipe(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	fd := int(w.Fd()) // Fd puts the file in blocking mode: take it once
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 512)
	for {
		if _, err := syscall.Write(fd, chunk); err != nil {
			break // EAGAIN: full
		}
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestSafety_StalledStderrCutoffActs: the agent's stderr stops draining
// (a full pipe nobody reads) before it even starts. It still energises the
// breaker once methane reads validly, cuts it within 2 s of methane
// reaching 1.60 %CH4 (GB 50581-2010 §3.1.4), keeps publishing telemetry,
// and stops on SIGTERM with the breaker cut.
func TestSafety_StalledStderrCutoffActs(t *testing.T) {
	s := newSafetySite(t)
	c := newConfig(t, s)
	p, _ := startProc(t, hazmonBin, nil, fullPipe(t), "run", "--config", c.write(t, ""))
	if within(wait, func() bool { return s.msgs.count("telemetry") > 0 }) < 0 {
		t.Fatal("no telemetry with stderr stalled")
	}
	if within(wait, s.energised) < 0 {
		t.Fatal("breaker never energised")
	}
	s.setCH4(0, 1.60)
	took := within(5*time.Second, func() bool { return !s.breakerOn() })
	if took < 0 || took > safety.MaxCutoffDelay {
		t.Fatalf("cut-off with stderr stalled took %v (want ≤ %v; -1: never)", took, safety.MaxCutoffDelay)
	}
	n := s.msgs.count("telemetry")
	if within(10*time.Second, func() bool { return s.msgs.count("telemetry") >= n+5 }) < 0 {
		t.Fatal("telemetry stopped while stderr was stalled")
	}
	if within(10*time.Second, func() bool { return s.msgs.hasAlarm(t, "CH4-101", "cutoff", "raised") }) < 0 {
		t.Fatal("no cut-off alarm at the bureau")
	}
	s.setCH4(0, 0.5)
	if within(wait, s.breakerOn) < 0 {
		t.Fatal("breaker not restored below 1.0 %CH4")
	}
	// The cleared cut-off carries its abnormal episode.
	var ep *contract.Episode
	within(10*time.Second, func() bool {
		for _, a := range s.msgs.alarms(t) {
			if a.Level == "cutoff" && a.State == "cleared" {
				ep = a.Episode
			}
		}
		return ep != nil
	})
	if ep == nil || ep.Max == nil || *ep.Max != 1.6 || ep.CutS["breaker-3"] <= 0 || ep.DurationS <= 0 {
		t.Fatalf("cleared cut-off episode %+v: want max 1.6 and breaker-3 cut for a while", ep)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if !p.exited(20 * time.Second) {
		t.Fatal("agent with a stalled stderr did not stop within 20 s of SIGTERM")
	}
	if s.breakerOn() {
		t.Fatal("breaker left energised after SIGTERM")
	}
	t.Logf("cut-off took %v with stderr stalled; stopped %v after SIGTERM", took, time.Since(p.started))
}

// TestSafety_DataDirUnusableCutsAtOnce: data_dir is a file, so neither the
// buffer nor the state record can be kept. Every output is still cut
// within 1 s of start and the agent keeps monitoring; since it cannot tell
// how it last stopped, it holds the outputs cut for the start-up hold, and
// status says why there is no buffer and why the breaker is held.
func TestSafety_DataDirUnusableCutsAtOnce(t *testing.T) {
	s := newSafetySite(t)
	c := newConfig(t, s)
	c.DataDir = filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(c.DataDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := startProc(t, hazmonBin, nil, nil, "run", "--config", c.write(t, ""))
	took := within(5*time.Second, func() bool { return !s.breakerOn() })
	if took < 0 || took > time.Second {
		t.Fatalf("breaker not cut within 1 s of start (took %v; -1: never)", took)
	}
	var out string
	if within(10*time.Second, func() bool {
		_, out = hazmonCLI(t, "status", "--socket", c.Socket, "--json")
		return strings.Contains(out, `"status": "normal"`)
	}) < 0 {
		t.Fatalf("no valid reading without a buffer: status\n%s", out)
	}
	for _, want := range []string{"not a directory", "held", `"state": "running"`} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not say %q:\n%s", want, out)
		}
	}
	s.setCH4(0, 1.7)
	if within(10*time.Second, func() bool {
		_, out = hazmonCLI(t, "status", "--socket", c.Socket, "--json")
		return strings.Contains(out, `"status": "cutoff"`)
	}) < 0 {
		t.Fatalf("monitoring stopped without a buffer: status\n%s", out)
	}
	if p.exited(0) {
		t.Fatalf("agent exited on an unusable data_dir: %v", p.err)
	}
	t.Logf("breaker cut %v after start", took)
}

// TestSafety_ExternalOpenStaysOpen: a PLC interlock opens the breaker coil
// that the agent holds energised. The agent never closes it again by
// itself: the coil stays open, output_mismatch is published, and only
// `hazmon output restore` brings power back (recorded as an event).
func TestSafety_ExternalOpenStaysOpen(t *testing.T) {
	s := newSafetySite(t)
	c := newConfig(t, s)
	startProc(t, hazmonBin, nil, nil, "run", "--config", c.write(t, ""))
	if within(wait, s.energised) < 0 {
		t.Fatal("breaker never energised")
	}
	s.bank.SetCoil(breakerUnit, breakerCoil, false) // the PLC opens it
	writes := len(s.bank.CoilWrites())
	if within(10*time.Second, func() bool { return s.msgs.hasAlarm(t, "breaker-3", safety.LevelOutputMismatch, "raised") }) < 0 {
		t.Fatal("no output_mismatch alarm")
	}
	time.Sleep(3 * time.Second) // three read-back periods: the agent must not act
	if s.breakerOn() {
		t.Fatal("the agent re-energised a breaker that something else had opened")
	}
	for _, w := range s.bank.CoilWrites()[writes:] {
		if w.Addr == breakerCoil && w.On {
			t.Fatalf("coil written on after the external open: %+v", w)
		}
	}
	if code, out := hazmonCLI(t, "output", "restore", "breaker-3", "--yes", "--socket", c.Socket); code != 0 {
		t.Fatalf("output restore: exit %d: %s", code, out)
	}
	if within(5*time.Second, s.breakerOn) < 0 {
		t.Fatal("restore did not bring power back")
	}
	if within(10*time.Second, func() bool { return len(s.msgs.events(t, "output_restore")) == 1 }) < 0 {
		t.Fatal("no output_restore event")
	}
}

// TestSafety_PLCHoldingCoilOpenNotFought: a PLC's own logic holds the
// breaker coil open (an interlock), so every write of 1 is acknowledged
// and reads back 0. The agent writes it on once, publishes
// output_mismatch and does not try again: each try would pulse the breaker.
func TestSafety_PLCHoldingCoilOpenNotFought(t *testing.T) {
	s := newSafetySite(t)
	s.bank.HoldCoil(breakerUnit, breakerCoil, false)
	c := newConfig(t, s)
	startProc(t, hazmonBin, nil, nil, "run", "--config", c.write(t, ""))
	if within(wait, func() bool { return s.msgs.hasAlarm(t, "breaker-3", safety.LevelOutputMismatch, "raised") }) < 0 {
		t.Fatal("no output_mismatch alarm")
	}
	time.Sleep(3 * time.Second) // three read-back periods: the agent must not try again
	on := 0
	for _, w := range s.bank.CoilWrites() {
		if w.Addr == breakerCoil && w.On {
			on++
		}
	}
	if on != 1 {
		t.Fatalf("%d writes of 1 against a coil the PLC holds open, want 1", on)
	}
}

// TestSafety_ReloadMovingCutoffKeepsBreakerCut: methane on CH4-101 is over
// its cut-off and the breaker is cut; a reload moves the cut-off rule to
// CH4-102 (reading 0.30), then another renames CH4-101. The breaker stays
// cut while CH4-101 still reads over the old restore value, and after the
// rename until a technician restores it.
func TestSafety_ReloadMovingCutoffKeepsBreakerCut(t *testing.T) {
	s := newSafetySite(t)
	c := newConfig(t, s)
	path := c.write(t, "")
	p, _ := startProc(t, hazmonBin, nil, nil, "run", "--config", path)
	if within(wait, s.energised) < 0 {
		t.Fatal("breaker never energised")
	}
	s.setCH4(0, 1.60)
	if within(5*time.Second, func() bool { return !s.breakerOn() }) < 0 {
		t.Fatal("no cut-off")
	}
	moved := c
	moved.Rules = "    rules: [{level: alarm, above: 1.0, clear_below: 1.0}]"
	moved.Extra = "" // CH4-102 gets the cut-off:
	body := strings.Replace(moved.yaml(), "interval: 200ms, range: [0, 4]}",
		"interval: 200ms, range: [0, 4], location: coal_face, cut_outputs: [breaker-3]}", 1)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if within(3*time.Second, s.breakerOn) >= 0 {
		t.Fatal("the reload energised the breaker while CH4-101 still reads 1.60")
	}
	s.setCH4(0, 0.9) // below the old restore value: the old cause is gone
	if within(5*time.Second, s.breakerOn) < 0 {
		t.Fatal("breaker not restored once the old cause was gone")
	}
	s.setCH4(0, 1.60)
	time.Sleep(time.Second) // CH4-101 no longer cuts: the breaker stays on (the new rules)
	if !s.breakerOn() {
		t.Fatal("CH4-101 still cuts after its rule moved")
	}
}

// TestSafety_PanicInPollerCutsEverything: a panic injected into a bus
// poller's goroutine (faultinject build) is recovered at its root: the
// breaker on the other bus is cut before the process exits non-zero.
func TestSafety_PanicInPollerCutsEverything(t *testing.T) {
	bin := faultBinary(t)
	s := newSafetySite(t)
	c := newConfig(t, s)
	p, log := startProc(t, bin, []string{"HAZMON_FAULT=panic:poller:3s"}, nil, "run", "--config", c.write(t, ""))
	if within(wait, s.energised) < 0 {
		t.Fatal("breaker never energised")
	}
	if !p.exited(wait) {
		t.Fatal("the agent did not exit after the panic")
	}
	if s.breakerOn() {
		t.Fatal("breaker left energised by a panicking agent")
	}
	if p.err == nil {
		t.Fatal("exit status 0 after a panic")
	}
	if !strings.Contains(log.String(), "injected fault") || !strings.Contains(log.String(), "every output cut") {
		t.Fatalf("panic not logged:\n%s", tail(log.String(), 20))
	}
}
