package modbus

import (
	"log/slog"
	"testing"
	"time"
)

// TestPlan_StretchWithin30s: when gas reads alone fill the bus, the other
// reads are slowed down, but never beyond the 30 s polling cycle of
// GB 50581-2010 §3.1.4 — a water level at 1 s is read at least every 30 s.
func TestPlan_StretchWithin30s(t *testing.T) {
	gas := &group{gas: true, interval: 200 * time.Millisecond, cost: 190 * time.Millisecond}
	level := &group{interval: time.Second, cost: 20 * time.Millisecond}
	slow := &group{interval: 20 * time.Second, cost: 20 * time.Millisecond}
	p := &Poller{groups: []*group{gas, level, slow}, log: slog.New(slog.DiscardHandler)}
	p.plan(time.Now())
	if gas.stretch != 1 {
		t.Errorf("gas stretch = %d, want 1", gas.stretch)
	}
	if level.stretch != 30 {
		t.Errorf("1 s read stretched ×%d, want ×30 (30 s)", level.stretch)
	}
	if slow.stretch != 1 {
		t.Errorf("20 s read stretched ×%d, want ×1 (already near 30 s)", slow.stretch)
	}
}
