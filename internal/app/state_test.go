package app

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/safety"
	"github.com/hazmon/hazmon/internal/statefile"
)

// TestState_CrashLoopHoldGrows: each unclean stop within an hour doubles
// the start-up hold (30 s, 60 s, 120 s …, at most 10 min); a clean stop
// holds nothing; a first start (no record) holds nothing; latched outputs
// come back from the alarms of the last run.
func TestState_CrashLoopHoldGrows(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Unix(1_800_000_000, 0)
	k := newStateKeeper(dir, log)
	if p := k.load(now); !p.holdUntil.IsZero() {
		t.Fatalf("first start held until %v", p.holdUntil)
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		at := now.Add(time.Duration(i) * time.Minute)
		prev := agentState{V: 1, Running: true, Started: at.Add(-5 * time.Second).UnixMilli(), Unclean: k.cur.Unclean,
			Alarms: []safety.Alarm{{ID: "K1/output_mismatch/1", Sensor: "K1", Level: safety.LevelOutputMismatch, State: "raised", Reason: "found cut"}}}
		if err := statefile.Write(filepath.Join(dir, StateFile), prev); err != nil {
			t.Fatal(err)
		}
		k = newStateKeeper(dir, log)
		p := k.load(at)
		if got := p.holdUntil.Sub(at); got != w {
			t.Fatalf("unclean stop %d: hold %v, want %v", i+1, got, w)
		}
		if p.latched["K1"] != "found cut" {
			t.Fatalf("latch not carried over: %v", p.latched)
		}
	}
	if err := statefile.Write(filepath.Join(dir, StateFile), agentState{V: 1, Running: false, Unclean: k.cur.Unclean}); err != nil {
		t.Fatal(err)
	}
	if p := newStateKeeper(dir, log).load(now.Add(10 * time.Minute)); !p.holdUntil.IsZero() {
		t.Fatalf("a clean stop held the outputs until %v", p.holdUntil)
	}
	// Unclean stops older than the window no longer count.
	old := agentState{V: 1, Running: true, Started: now.UnixMilli(), Unclean: []int64{now.Add(-2 * time.Hour).UnixMilli()}}
	if err := statefile.Write(filepath.Join(dir, StateFile), old); err != nil {
		t.Fatal(err)
	}
	if p := newStateKeeper(dir, log).load(now.Add(time.Minute)); p.holdUntil.Sub(now.Add(time.Minute)) != CrashHold {
		t.Fatalf("an unclean stop 2 h ago still counted: hold until %v", p.holdUntil)
	}
}
