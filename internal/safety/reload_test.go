package safety

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// twoSensors is faceSpec plus a second methane sensor CH4-B without rules.
func twoSensors() Spec {
	s := faceSpec()
	s.Sensors = append(s.Sensors, SensorRules{Sensor: "CH4-B", Type: "methane", Resolution: MethaneResolution})
	return s
}

// TestReload_MovedCutoffRuleKeepsOutputCut: CH4 is over its cut-off and K1
// is cut; the reload moves the cut-off rule to CH4-B (reading 0.3). K1
// stays cut while CH4 still reads over the old restore value, and comes
// back once CH4 reads below it.
func TestReload_MovedCutoffRuleKeepsOutputCut(t *testing.T) {
	r := newRig(t, twoSensors(), Options{})
	r.offer("CH4", 0.3)
	r.offer("CH4", 1.6)
	if !r.cut("K1") {
		t.Fatal("not cut")
	}
	next := twoSensors()
	next.Sensors[1].Rules, next.Sensors[0].Rules = next.Sensors[0].Rules, nil
	if err := r.core.Reload(context.Background(), next, r.laneMap(next)); err != nil {
		t.Fatal(err)
	}
	r.offer("CH4-B", 0.3)
	r.offer("CH4", 1.2)
	if !r.cut("K1") {
		t.Fatal("the reload energised K1 while the reading that cut it still stands")
	}
	r.offer("CH4", 0.9)
	r.offer("CH4-B", 0.3)
	if r.cut("K1") {
		t.Fatal("K1 still cut after the old cause cleared and the new rules allow power")
	}
}

// TestReload_RemovedSensorHoldsUntilRestore: the sensor that cut K1 is
// removed (or renamed) by the reload: nothing can clear the old cause, so
// K1 stays cut until a technician restores it.
func TestReload_RemovedSensorHoldsUntilRestore(t *testing.T) {
	r := newRig(t, twoSensors(), Options{})
	r.offer("CH4", 1.6)
	next := twoSensors()
	next.Sensors = next.Sensors[1:]
	next.Sensors[0].Rules = faceSpec().Sensors[0].Rules
	if err := r.core.Reload(context.Background(), next, r.laneMap(next)); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		r.offer("CH4-B", 0.2)
		r.advance(time.Second)
	}
	if !r.cut("K1") {
		t.Fatal("removing the sensor that cut K1 restored power")
	}
	snap, _ := r.core.Snapshot(context.Background())
	if !strings.Contains(snap.Outputs[0].Why, "reload") {
		t.Fatalf("status does not say why K1 is held: %q", snap.Outputs[0].Why)
	}
	if _, err := r.core.Restore(context.Background(), "K1"); err != nil {
		t.Fatal(err)
	}
	r.offer("CH4-B", 0.2)
	if r.cut("K1") {
		t.Fatal("restore did not lift the reload hold")
	}
	// The cut-off alarm of the removed sensor was cleared by the reload.
	var cleared bool
	for _, a := range r.alarms() {
		cleared = cleared || (a.Sensor == "CH4" && a.Level == "cutoff" && a.State == StateCleared && a.Reason == ReasonReload)
	}
	if !cleared {
		t.Fatal("the removed sensor's cut-off alarm was left open")
	}
}

// TestReload_NoBlindWindow: the reading right after a reload is evaluated
// by the new rules; no reading is dropped across it.
func TestReload_NoBlindWindow(t *testing.T) {
	r := newRig(t, faceSpec(), Options{})
	r.offer("CH4", 0.3)
	next := faceSpec()
	next.Sensors[0].Rules[1].Above = f(1.2) // stricter cut-off
	r.src.Offer(readingAt("CH4", 0.4, r.clk.Now()))
	if err := r.core.Reload(context.Background(), next, r.laneMap(next)); err != nil {
		t.Fatal(err)
	}
	r.offer("CH4", 1.3)
	if !r.cut("K1") {
		t.Fatal("the first reading after the reload was not evaluated by the new rules")
	}
	var n int
	for _, it := range r.items {
		if it.Kind == ItemReading {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d readings came out, want 3", n)
	}
}

// TestReload_RefusedDuringTest: a reload while an output test runs is
// refused and the running spec stays.
func TestReload_RefusedDuringTest(t *testing.T) {
	r := newRig(t, faceSpec(), Options{})
	r.offer("CH4", 0.3)
	if err := r.core.TestCut(context.Background(), "K1", time.Minute); err != nil {
		t.Fatal(err)
	}
	next := faceSpec()
	next.Sensors[0].Rules[1].Above = f(1.2)
	if err := r.core.Reload(context.Background(), next, r.laneMap(next)); !errors.Is(err, ErrTesting) {
		t.Fatalf("reload during a test: %v", err)
	}
	r.offer("CH4", 1.3)
	if st := r.core.st.engine; st == nil {
		t.Fatal("no engine")
	}
	snap, _ := r.core.Snapshot(context.Background())
	if snap.Sensors["CH4"] != "alarm" {
		t.Fatalf("1.3 under the running rules: %s, want alarm (not the refused file's cut-off)", snap.Sensors["CH4"])
	}
}

// TestReload_BadSpecKeepsRunning: invalid rules or a missing lane are
// refused.
func TestReload_BadSpecKeepsRunning(t *testing.T) {
	r := newRig(t, faceSpec(), Options{})
	bad := faceSpec()
	bad.Sensors[0].Rules[0].Level = "purple"
	if err := r.core.Reload(context.Background(), bad, r.laneMap(bad)); err == nil {
		t.Fatal("invalid rules accepted")
	}
	bad = faceSpec(OutputSpec{Name: "K1"}, OutputSpec{Name: "K2"})
	if err := r.core.Reload(context.Background(), bad, map[string]Lane{"K1": r.lanes["K1"]}); err == nil {
		t.Fatal("an output without a lane accepted")
	}
	r.offer("CH4", 1.6)
	if !r.cut("K1") {
		t.Fatal("the running rules stopped working after a refused reload")
	}
}

// OutputsSnapshot gives the outputs exactly as Snapshot does (here one cut
// by an alarm), without the per-sensor map and the alarms.
func TestOutputsSnapshot_TheOutputsOfSnapshotWithoutSensors(t *testing.T) {
	r := newRig(t, twoSensors(), Options{})
	r.offer("CH4", 1.6)
	whole, err := r.core.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	outs, err := r.core.OutputsSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Sensors) == 0 || len(whole.Alarms) == 0 || !whole.Outputs[0].Cut {
		t.Fatalf("the rig's snapshot: %+v; want sensors, an active alarm and K1 cut", whole)
	}
	if outs.Sensors != nil || outs.Alarms != nil {
		t.Fatalf("OutputsSnapshot has sensors %v alarms %v; want none", outs.Sensors, outs.Alarms)
	}
	if !reflect.DeepEqual(outs.Outputs, whole.Outputs) {
		t.Fatalf("outputs differ:\n%+v\n%+v", outs.Outputs, whole.Outputs)
	}
}

// TestReload_NewLaneOfACutOutputGetsItsOwnConfirmationWindow: K1 has been
// cut and confirmed for 3 s when a reload gives it a new lane (the relay
// moved to another coil); the new lane is sent the cut again and has
// MaxCutoffDelay from then to confirm it, not from the cut 3 s earlier
// (output_unconfirmed was raised at the first tick after the reload).
func TestReload_NewLaneOfACutOutputGetsItsOwnConfirmationWindow(t *testing.T) {
	r := newRig(t, faceSpec(), Options{})
	r.offer("CH4", 1.6)
	if !r.cut("K1") {
		t.Fatal("not cut")
	}
	r.advance(3 * time.Second)
	moved := &fakeLane{} // does not confirm by itself
	r.lanes["K1"] = moved
	if err := r.core.Reload(context.Background(), faceSpec(), map[string]Lane{"K1": moved}); err != nil {
		t.Fatal(err)
	}
	if cmd, ok := moved.last(); !ok || !cmd.Cut {
		t.Fatalf("the new lane got %+v (sent %v); want the cut", cmd, ok)
	}
	for range 19 {
		r.advance(TickEvery)
	}
	for _, a := range r.alarms() {
		if a.Level == LevelOutputUnconfirmed {
			t.Fatalf("1.9 s after the reload: %+v", a)
		}
	}
	r.advance(2 * TickEvery)
	var raised bool
	for _, a := range r.alarms() {
		raised = raised || (a.Level == LevelOutputUnconfirmed && a.State == StateRaised)
	}
	if !raised {
		t.Fatal("the new lane never confirmed the cut and no output_unconfirmed was raised 2.1 s after the reload")
	}
}
