package app

import (
	"context"
	"fmt"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
)

// Clock-step detection defaults.
const (
	// ClockCheckEvery is how often the wall clock is compared with the
	// monotonic clock.
	ClockCheckEvery = time.Second
	// ClockStepMin is the smallest wall-clock step reported: NTP slews
	// small offsets (≤ 128 ms) and steps larger ones.
	ClockStepMin = 500 * time.Millisecond
)

// ClockWatch reports wall-clock steps (an NTP correction on a board
// without RTC, a manual date change). Sample times come from the wall
// clock, but ordering and intervals use the monotonic clock and the
// buffer's commit order, so a step neither reorders nor drops data; it is
// reported so the bureau can interpret the ts around it.
type ClockWatch struct {
	// Wall returns the wall clock with no monotonic reading; default
	// time.Now().Round(0). Tests inject a stepping clock.
	Wall func() time.Time
	// Mono returns a monotonic duration since an arbitrary origin;
	// default time.Since(start).
	Mono  func() time.Duration
	Every time.Duration // default ClockCheckEvery
	Min   time.Duration // default ClockStepMin
	// Report receives one clock_step event per step (TS: the new wall
	// time, FromTS: the wall time expected from the monotonic clock,
	// ToTS: the wall time found, Detail: the signed step).
	Report func(contract.Event)
}

// Run checks the clocks every Every until ctx ends.
func (w ClockWatch) Run(ctx context.Context) {
	start := time.Now()
	if w.Wall == nil {
		w.Wall = func() time.Time { return time.Now().Round(0) }
	}
	if w.Mono == nil {
		w.Mono = func() time.Duration { return time.Since(start) }
	}
	if w.Every <= 0 {
		w.Every = ClockCheckEvery
	}
	if w.Min <= 0 {
		w.Min = ClockStepMin
	}
	wall, mono := w.Wall(), w.Mono()
	tk := time.NewTicker(w.Every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		wall2, mono2 := w.Wall(), w.Mono()
		expected := wall.Add(mono2 - mono)
		if step := wall2.Sub(expected); step >= w.Min || step <= -w.Min {
			w.Report(contract.Event{Type: contract.EventClockStep, TS: wall2.UnixMilli(),
				FromTS: max(0, expected.UnixMilli()), ToTS: max(0, wall2.UnixMilli()),
				Reason: "wall_clock_step", Detail: fmt.Sprintf("wall clock stepped %+dms", step.Milliseconds())})
		}
		wall, mono = wall2, mono2
	}
}
