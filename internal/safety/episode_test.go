package safety

import (
	"context"
	"math"
	"testing"
	"time"
)

// TestCore_EpisodeOnClear: the cleared cut-off alarm carries its episode:
// start and end, the extreme values with their times, the mean of the
// readings while it was raised, and how long the output was actually cut
// (read back).
func TestCore_EpisodeOnClear(t *testing.T) {
	r := newRig(t, faceSpec(), Options{})
	r.offer("CH4", 0.3)
	t0 := r.clk.Now()
	r.offer("CH4", 1.6) // raises alarm and cut-off; K1 cut (the lane confirms at once)
	r.advance(time.Second)
	r.offer("CH4", 2.1)
	r.advance(time.Second)
	r.offer("CH4", 1.2)
	r.advance(time.Second)
	r.offer("CH4", 0.9) // clears both
	var ep *Episode
	for _, a := range r.alarms() {
		if a.Level == string(LevelCutoff) && a.State == StateCleared {
			ep = a.Episode
		}
	}
	if ep == nil {
		t.Fatal("cleared cut-off without an episode")
	}
	if !ep.Start.Equal(t0) || ep.Duration() != 3*time.Second {
		t.Fatalf("episode %v..%v (%v), want 3 s from %v", ep.Start, ep.End, ep.Duration(), t0)
	}
	if ep.Values != 3 || ep.Max != 2.1 || !ep.MaxAt.Equal(t0.Add(time.Second)) || ep.Min != 1.2 || math.Abs(ep.Mean()-(1.6+2.1+1.2)/3) > 1e-9 {
		t.Fatalf("episode values %+v (mean %v)", ep, ep.Mean())
	}
	if got := ep.CutS["K1"]; math.Abs(got-3) > 1e-9 {
		t.Fatalf("K1 cut for %v s during the episode, want 3", got)
	}
	for _, a := range r.alarms() {
		if a.State == StateRaised && a.Episode != nil {
			t.Fatal("a raised alarm carries an episode")
		}
	}
}

// TestCore_CalibrationDue: 24 h before a sensor's calibration is due an
// event warns; at the due time calibration_overdue is raised; a reload with
// a later date clears it.
func TestCore_CalibrationDue(t *testing.T) {
	spec := faceSpec()
	due := newFakeClock().Now().Add(48 * time.Hour)
	spec.Sensors[0].CalibrationDue = due
	r := newRig(t, spec, Options{})
	r.advance(23 * time.Hour)
	if evs := r.events(); len(evs) != 0 {
		t.Fatalf("warned 25 h early: %+v", evs)
	}
	r.advance(2 * time.Hour)
	if evs := r.events(); len(evs) != 1 || evs[0].Type != EventCalibrationDue || evs[0].Sensor != "CH4" {
		t.Fatalf("events 23 h before due: %+v", evs)
	}
	r.advance(23 * time.Hour)
	var got []string
	for _, a := range r.alarms() {
		if a.Level == LevelCalibrationOverdue {
			got = append(got, a.State)
		}
	}
	if len(got) != 1 || got[0] != StateRaised {
		t.Fatalf("overdue alarms %v", got)
	}
	later := faceSpec()
	later.Sensors[0].CalibrationDue = due.Add(15 * 24 * time.Hour)
	if err := r.core.Reload(context.Background(), later, r.laneMap(later)); err != nil {
		t.Fatal(err)
	}
	r.sync()
	got = got[:0]
	for _, a := range r.alarms() {
		if a.Level == LevelCalibrationOverdue {
			got = append(got, a.State)
		}
	}
	if len(got) != 1 || got[0] != StateCleared {
		t.Fatalf("after a later due date: %v", got)
	}
}
