package app

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
)

// A wall clock that steps +1 h and later -90 s against a steady monotonic
// clock gives exactly two clock_step events with the signed steps; normal
// ticking and a 100 ms slew give none.
func TestClockWatch_ReportsSteps(t *testing.T) {
	var offset atomic.Int64 // ns added to the real wall clock
	base := time.Now()
	var mu sync.Mutex
	var got []contract.Event
	w := ClockWatch{
		Wall:  func() time.Time { return time.Now().Round(0).Add(time.Duration(offset.Load())) },
		Mono:  func() time.Duration { return time.Since(base) },
		Every: 20 * time.Millisecond,
		Report: func(e contract.Event) {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	waitFor := func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d clock_step events, want %d", count(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond)
	offset.Store(int64(100 * time.Millisecond)) // a slew-sized correction
	time.Sleep(100 * time.Millisecond)
	if n := count(); n != 0 {
		t.Fatalf("%d events without a step: %+v", n, got)
	}
	offset.Add(int64(time.Hour))
	waitFor(1)
	offset.Add(int64(-90 * time.Second))
	waitFor(2)
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
	if len(got) != 2 {
		t.Fatalf("events = %+v, want 2", got)
	}
	for i, want := range []string{"wall clock stepped +", "wall clock stepped -"} {
		e := got[i]
		if e.Type != contract.EventClockStep || len(e.Detail) < len(want) || e.Detail[:len(want)] != want {
			t.Fatalf("event %d = %+v, want detail %q…", i, e, want)
		}
		if step := e.ToTS - e.FromTS; (i == 0 && (step < 3599_900 || step > 3600_100)) || (i == 1 && (step < -90_100 || step > -89_900)) {
			t.Fatalf("event %d: to_ts - from_ts = %d ms", i, step)
		}
	}
	e := got[0]
	e.V, e.Agent, e.Site, e.Seq = contract.Version, "gw-01", "site-0001", 1
	b, _ := contract.Marshal(e)
	if err := contract.Validate(contract.KindEvent, b); err != nil {
		t.Fatal(err)
	}
}
