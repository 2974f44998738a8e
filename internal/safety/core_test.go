package safety

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// TestCore_CutoffCommandsLane: a methane reading at the cut-off commands
// its output cut in the same step, and the alarm names sensor, level and
// direction; below the restore value power comes back.
func TestCore_CutoffCommandsLane(t *testing.T) {
	r := newRig(t, faceSpec(), Options{})
	r.sync()
	if !r.cut("K1") {
		t.Fatal("output not cut at start")
	}
	r.offer("CH4", 0.5)
	if r.cut("K1") {
		t.Fatal("output still cut after a valid reading below the limits")
	}
	r.offer("CH4", 1.5)
	if !r.cut("K1") {
		t.Fatal("1.50 %CH4 did not cut K1")
	}
	var raised Alarm
	for _, a := range r.alarms() {
		if a.Level == string(LevelCutoff) {
			raised = a
		}
	}
	if !strings.HasPrefix(raised.ID, "CH4/cutoff/high/") || raised.State != StateRaised || !raised.HasLimit || raised.Limit != 1.5 {
		t.Fatalf("cut-off alarm = %+v", raised)
	}
	r.offer("CH4", 1.0)
	if !r.cut("K1") {
		t.Fatal("1.00 restored power (restore only strictly below 1.0)")
	}
	r.offer("CH4", 0.99)
	if r.cut("K1") {
		t.Fatal("0.99 did not restore power")
	}
	for _, a := range r.alarms() {
		if a.Level == string(LevelCutoff) && (a.State != StateCleared || a.ID != raised.ID) {
			t.Fatalf("cleared %+v does not pair with raised %s", a, raised.ID)
		}
	}
}

// TestSource_OfferNeverBlocks: with the Core not running at all, a source
// accepts what fits and counts the rest as overruns, returning at once.
func TestSource_OfferNeverBlocks(t *testing.T) {
	c, err := New(faceSpec(), map[string]Lane{"K1": &fakeLane{}}, Options{Clock: newFakeClock(), SourceQueue: 8})
	if err != nil {
		t.Fatal(err)
	}
	s := c.NewSource("bus")
	for i := range 20 {
		s.Offer(reading.Reading{Sensor: "CH4", Value: float64(i), Status: reading.StatusNormal})
	}
	if s.Offered() != 8 || s.Overruns() != 12 {
		t.Fatalf("offered %d, overruns %d; want 8, 12", s.Offered(), s.Overruns())
	}
}

// TestCore_FullOutboxDoesNotStopCut: nobody drains the Outbox (the logger
// and the buffer are stalled); the cut is still commanded and the items
// that did not fit are counted.
func TestCore_FullOutboxDoesNotStopCut(t *testing.T) {
	clk := newFakeClock()
	lane := &fakeLane{}
	c, err := New(faceSpec(), map[string]Lane{"K1": lane}, Options{Clock: clk, OutboxReadings: 4, OutboxUrgent: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	src := c.NewSource("bus")
	for i := range 50 {
		src.Offer(reading.Reading{Sensor: "CH4", Value: 0.3 + float64(i%2)*1.5, Status: reading.StatusNormal})
	}
	src.Offer(reading.Reading{Sensor: "CH4", Value: 1.6, Status: reading.StatusNormal})
	if _, err := c.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if cmd, _ := lane.last(); !cmd.Cut {
		t.Fatal("cut not commanded while the Outbox was full")
	}
	lr, lu := c.Outbox().Lost()
	if lr == 0 || lu == 0 {
		t.Fatalf("lost readings %d, alarms %d: want both counted", lr, lu)
	}
}

// TestCore_SourcesTakeTurns: a source flooding the Core cannot delay
// another source's cut-off beyond one batch.
func TestCore_SourcesTakeTurns(t *testing.T) {
	clk := newFakeClock()
	lane := &fakeLane{}
	spec := faceSpec()
	spec.Sensors = append(spec.Sensors, SensorRules{Sensor: "T", Resolution: 0.1})
	c, err := New(spec, map[string]Lane{"K1": lane}, Options{Clock: clk, SourceQueue: 10000})
	if err != nil {
		t.Fatal(err)
	}
	flood, gas := c.NewSource("flood"), c.NewSource("gas")
	for range 5000 {
		flood.Offer(reading.Reading{Sensor: "T", Value: 20, Status: reading.StatusNormal})
	}
	gas.Offer(reading.Reading{Sensor: "CH4", Value: 1.6, Status: reading.StatusNormal})
	c.step() // one step, as Run does
	if flood.pending() == false {
		t.Fatal("the flood was taken whole in one step")
	}
	if st, _ := c.st.engine.Status("CH4"); st != reading.StatusCutoff {
		t.Fatalf("CH4 not evaluated in the first step: %s", st)
	}
}

// TestCore_ActiveAlarmsBeforeTheirItem: by the time an alarm's item can be
// taken from the Outbox, ActiveAlarms already lists it (raised) or no
// longer lists it (cleared). The recorder reads the snapshot when it takes
// an alarm; a snapshot updated only at the end of the step let it publish
// the retained alarms without the cut-off it had just logged.
func TestCore_ActiveAlarmsBeforeTheirItem(t *testing.T) {
	clk := newFakeClock()
	c, err := New(faceSpec(), map[string]Lane{"K1": &fakeLane{}}, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	listed := func(level string) bool {
		for _, a := range c.ActiveAlarms() {
			if a.Sensor == "CH4" && a.Level == level {
				return true
			}
		}
		return false
	}
	took := func(state string) bool {
		for _, it := range c.Outbox().Take(nil) {
			if it.Kind == ItemAlarm && it.Alarm.Level == string(LevelCutoff) && it.Alarm.State == state {
				return true
			}
		}
		return false
	}
	c.evaluate(reading.Reading{Sensor: "CH4", Value: 1.6, Time: clk.Now(), Status: reading.StatusNormal}, clk.Now())
	if !took(StateRaised) {
		t.Fatal("no cut-off raised")
	}
	if !listed(string(LevelCutoff)) {
		t.Fatal("the raised cut-off was taken before ActiveAlarms listed it")
	}
	clk.advance(time.Second)
	c.evaluate(reading.Reading{Sensor: "CH4", Value: 0.4, Time: clk.Now(), Status: reading.StatusNormal}, clk.Now())
	if !took(StateCleared) {
		t.Fatal("no cut-off cleared")
	}
	if listed(string(LevelCutoff)) {
		t.Fatal("the cleared cut-off was taken while ActiveAlarms still listed it")
	}
}

// TestCore_MismatchLatchesUntilRestore: a coil found open while the agent
// wants it on (a PLC interlock opened it) is never energised again by the
// agent: it stays cut, raises output_mismatch, and comes back only after a
// technician's restore (recorded as an event).
func TestCore_MismatchLatchesUntilRestore(t *testing.T) {
	r := newRig(t, faceSpec(), Options{})
	r.lanes["K1"].manual()
	r.offer("CH4", 0.3)
	cmd, _ := r.lanes["K1"].last()
	if cmd.Cut {
		t.Fatal("not energised")
	}
	r.core.Observe(Observation{Output: "K1", Gen: cmd.Gen, Known: true, Energised: false, Mismatch: true, Err: "coil reads back 0"})
	r.sync()
	if !r.cut("K1") {
		t.Fatal("a mismatch did not latch the output cut")
	}
	var mm Alarm
	for _, a := range r.alarms() {
		if a.Level == LevelOutputMismatch {
			mm = a
		}
	}
	if mm.State != StateRaised || mm.Sensor != "K1" {
		t.Fatalf("no output_mismatch raised: %+v", mm)
	}
	for range 20 { // the rules allow power; the latch holds
		r.advance(time.Second)
		r.offer("CH4", 0.3)
	}
	if !r.cut("K1") {
		t.Fatal("the agent re-energised an output that something else had opened")
	}
	lifted, err := r.core.Restore(context.Background(), "K1")
	if err != nil || !strings.Contains(lifted, "mismatch") {
		t.Fatalf("restore: %q, %v", lifted, err)
	}
	r.sync()
	if r.cut("K1") {
		t.Fatal("restore did not bring power back")
	}
	evs := r.events()
	if len(evs) != 1 || evs[0].Type != EventOutputRestore || evs[0].Output != "K1" {
		t.Fatalf("events %+v, want one output_restore", evs)
	}
	for _, a := range r.alarms() {
		if a.Level == LevelOutputMismatch && (a.State != StateCleared || a.ID != mm.ID) {
			t.Fatalf("mismatch cleared as %+v", a)
		}
	}
	if _, err := r.core.Restore(context.Background(), "K1"); err == nil {
		t.Fatal("a second restore with nothing held succeeded")
	}
}

// TestCore_RestoreNeverOverridesRules: restore lifts a latch, not a rule.
func TestCore_RestoreNeverOverridesRules(t *testing.T) {
	r := newRig(t, faceSpec(), Options{Latched: map[string]string{"K1": "found cut"}})
	r.offer("CH4", 1.7)
	if _, err := r.core.Restore(context.Background(), "K1"); err != nil {
		t.Fatal(err)
	}
	r.sync()
	if !r.cut("K1") {
		t.Fatal("restore energised an output its cut-off rule demands cut")
	}
}

// TestCore_UnconfirmedCut: a cut the lane cannot confirm within 2 s raises
// output_unconfirmed; the confirmation clears it.
func TestCore_UnconfirmedCut(t *testing.T) {
	r := newRig(t, faceSpec(), Options{})
	r.lanes["K1"].manual()
	r.offer("CH4", 0.3)
	on, _ := r.lanes["K1"].last()
	r.core.Observe(Observation{Output: "K1", Gen: on.Gen, Known: true, Energised: true, Confirmed: true})
	r.offer("CH4", 1.6)
	cut, _ := r.lanes["K1"].last()
	r.core.Observe(Observation{Output: "K1", Gen: cut.Gen, Err: "bus down"})
	r.advance(1900 * time.Millisecond)
	for _, a := range r.alarms() {
		if a.Level == LevelOutputUnconfirmed {
			t.Fatalf("output_unconfirmed before 2 s: %+v", a)
		}
	}
	r.advance(200 * time.Millisecond)
	var un []Alarm
	for _, a := range r.alarms() {
		if a.Level == LevelOutputUnconfirmed {
			un = append(un, a)
		}
	}
	if len(un) != 1 || un[0].State != StateRaised || !strings.Contains(un[0].Reason, "bus down") {
		t.Fatalf("output_unconfirmed = %+v", un)
	}
	r.core.Observe(Observation{Output: "K1", Gen: cut.Gen, Known: true, Confirmed: true})
	r.sync()
	un = un[:0]
	for _, a := range r.alarms() {
		if a.Level == LevelOutputUnconfirmed {
			un = append(un, a)
		}
	}
	if len(un) != 1 || un[0].State != StateCleared {
		t.Fatalf("after confirmation: %+v", un)
	}
}

// TestAlarmID_HighAndLowRulesOfOneLevel: a tank level with a high and a
// low alarm of the same level gets two alarm ids; each cleared message
// carries its own raise's id.
func TestAlarmID_HighAndLowRulesOfOneLevel(t *testing.T) {
	spec := Spec{Sensors: []SensorRules{{Sensor: "TANK", Resolution: 0.1, Rules: []Rule{
		{Level: LevelAlarm, Above: f(80), ClearBelow: f(75)},
		{Level: LevelAlarm, Below: f(10), ClearAbove: f(15)},
	}}}}
	r := newRig(t, spec, Options{})
	r.offer("TANK", 85)
	r.advance(time.Second)
	r.offer("TANK", 5) // high clears, low raises
	r.advance(time.Second)
	r.offer("TANK", 50) // low clears
	ids := map[string][]string{}
	for _, a := range r.alarms() {
		ids[a.ID] = append(ids[a.ID], a.Direction+":"+a.State)
	}
	if len(ids) != 2 {
		t.Fatalf("alarm ids %v: want one per rule", ids)
	}
	for id, states := range ids {
		if len(states) != 2 || !strings.HasSuffix(states[0], StateRaised) || !strings.HasSuffix(states[1], StateCleared) {
			t.Fatalf("%s: %v, want raised then cleared", id, states)
		}
		if dir := strings.Split(states[0], ":")[0]; !strings.Contains(id, "/alarm/"+dir+"/") {
			t.Fatalf("id %s does not name direction %s", id, dir)
		}
	}
}

// TestCore_RestartReannounce: alarms active at the last stop are cleared
// with reason restart once their sensor reads validly without raising
// them again; one that is raised again keeps its old id; the rest are
// cleared at the settle deadline.
func TestCore_RestartReannounce(t *testing.T) {
	spec := faceSpec()
	spec.Sensors = append(spec.Sensors, SensorRules{Sensor: "O2", Resolution: 0.1, Rules: []Rule{{Level: LevelAlarm, Below: f(20), ClearAbove: f(20)}}})
	prev := []Alarm{
		{ID: "CH4/cutoff/high/1000", Sensor: "CH4", Level: "cutoff", Direction: DirHigh, State: StateRaised},
		{ID: "O2/alarm/low/1000", Sensor: "O2", Level: "alarm", Direction: DirLow, State: StateRaised},
		{ID: "GONE/fault/1000", Sensor: "GONE", Level: "fault", State: StateRaised},
	}
	r := newRig(t, spec, Options{PreviousAlarms: prev, RestartSettle: 10 * time.Second})
	r.offer("CH4", 1.6)
	r.offer("O2", 20.9)
	got := map[string]Alarm{}
	for _, a := range r.alarms() {
		got[a.ID+" "+a.State] = a
	}
	if a, ok := got["CH4/cutoff/high/1000 raised"]; !ok || a.Reason != ReasonRestart {
		t.Fatalf("cut-off still active after restart not raised with its old id: %v", got)
	}
	if a, ok := got["O2/alarm/low/1000 cleared"]; !ok || a.Reason != ReasonRestart {
		t.Fatalf("O2 alarm gone during the stop not cleared with reason restart: %v", got)
	}
	if _, ok := got["GONE/fault/1000 cleared"]; ok {
		t.Fatal("an alarm of a sensor that has not read was cleared before the deadline")
	}
	r.advance(10 * time.Second)
	al := r.alarms()
	if len(al) != 1 || al[0].ID != "GONE/fault/1000" || al[0].State != StateCleared || al[0].Reason != ReasonRestart {
		t.Fatalf("at the deadline: %+v", al)
	}
	act := r.core.ActiveAlarms()
	if len(act) != 2 || act[0].Level != "alarm" || act[1].ID != "CH4/cutoff/high/1000" {
		t.Fatalf("active set %+v, want CH4's new alarm and its continued cut-off", act)
	}
}

// TestCore_StartupHold: after an unclean stop every output stays cut until
// HoldUntil, however good the readings, so a crash loop cannot cycle power.
func TestCore_StartupHold(t *testing.T) {
	clk0 := newFakeClock().Now()
	r := newRig(t, faceSpec(), Options{HoldUntil: clk0.Add(time.Minute), HoldReason: "restart after a crash"})
	for range 59 {
		r.offer("CH4", 0.2)
		r.advance(time.Second)
	}
	if !r.cut("K1") {
		t.Fatal("output energised during the start-up hold")
	}
	r.advance(2 * time.Second)
	if r.cut("K1") {
		t.Fatal("output still cut after the start-up hold")
	}
}

// TestCore_Heartbeat: each heartbeat period the lane gets a new beat while
// the Core runs.
func TestCore_Heartbeat(t *testing.T) {
	r := newRig(t, faceSpec(OutputSpec{Name: "K1", Heartbeat: time.Second}), Options{})
	r.sync()
	first, _ := r.lanes["K1"].last()
	for range 5 {
		r.advance(time.Second)
	}
	last, _ := r.lanes["K1"].last()
	if last.Beat-first.Beat < 4 {
		t.Fatalf("beats %d → %d over 5 s", first.Beat, last.Beat)
	}
}

// TestCore_FeedAbnormal: power still present on the feed 2 s after a cut
// raises feed_abnormal; the feed agreeing clears it.
func TestCore_FeedAbnormal(t *testing.T) {
	spec := faceSpec(OutputSpec{Name: "K1", Feed: "FEED"})
	spec.Sensors = append(spec.Sensors, SensorRules{Sensor: "FEED", Resolution: 1})
	r := newRig(t, spec, Options{})
	r.offer("CH4", 0.3)
	r.offer("FEED", 1)
	r.offer("CH4", 1.6)
	r.advance(time.Second)
	r.offer("FEED", 1)
	for _, a := range r.alarms() {
		if a.Level == LevelFeedAbnormal {
			t.Fatalf("feed abnormal before its timeout: %+v", a)
		}
	}
	r.advance(1100 * time.Millisecond)
	var fa []Alarm
	for _, a := range r.alarms() {
		if a.Level == LevelFeedAbnormal {
			fa = append(fa, a)
		}
	}
	if len(fa) != 1 || fa[0].State != StateRaised || fa[0].Sensor != "FEED" {
		t.Fatalf("feed abnormal = %+v", fa)
	}
	r.offer("FEED", 0)
	fa = fa[:0]
	for _, a := range r.alarms() {
		if a.Level == LevelFeedAbnormal {
			fa = append(fa, a)
		}
	}
	if len(fa) != 1 || fa[0].State != StateCleared {
		t.Fatalf("feed abnormal not cleared: %+v", fa)
	}
}

// TestCore_OutputTest: a test cuts an output that is on, refuses one that
// is cut, and ends by itself at its deadline.
func TestCore_OutputTest(t *testing.T) {
	r := newRig(t, faceSpec(), Options{})
	ctx := context.Background()
	if err := r.core.TestCut(ctx, "K1", 5*time.Second); err == nil || !strings.Contains(err.Error(), "only cuts power that is on") {
		t.Fatalf("test of a cut output: %v", err)
	}
	r.offer("CH4", 0.3)
	if err := r.core.TestCut(ctx, "K1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.sync()
	if !r.cut("K1") {
		t.Fatal("test did not cut")
	}
	r.advance(4 * time.Second)
	if !r.cut("K1") {
		t.Fatal("test ended early")
	}
	r.advance(1100 * time.Millisecond)
	if r.cut("K1") {
		t.Fatal("test did not end by itself")
	}
	evs := r.events()
	if len(evs) != 2 || evs[0].Type != EventOutputTestStart || evs[1].Type != EventOutputTestEnd {
		t.Fatalf("events %+v", evs)
	}
}

// TestCore_StaleSensorFaults: a sensor with no reading for stale_after
// becomes a fault and its cut-off outputs are cut (communication lost).
func TestCore_StaleSensorFaults(t *testing.T) {
	spec := faceSpec()
	spec.Sensors[0].StaleAfter = 3 * time.Second
	r := newRig(t, spec, Options{})
	r.offer("CH4", 0.3)
	r.advance(2900 * time.Millisecond)
	if r.cut("K1") {
		t.Fatal("cut before stale_after")
	}
	r.advance(200 * time.Millisecond)
	if !r.cut("K1") {
		t.Fatal("a silent methane sensor did not cut its output")
	}
}

// TestCore_RunStopsOnCancel: Run returns when its context ends and
// requests then fail with ErrStopped.
func TestCore_RunStopsOnCancel(t *testing.T) {
	c, err := New(faceSpec(), map[string]Lane{"K1": &fakeLane{}}, Options{Clock: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot(context.Background()); err != ErrStopped {
		t.Fatalf("snapshot after stop: %v", err)
	}
}
