package publish

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// currentUnderTest is a Publisher that never connects, on a fake clock,
// its current snapshot taken by hand as the session would take it.
type currentUnderTest struct {
	t     *testing.T
	p     *Publisher
	clock *fakeClock
}

func newCurrentUnderTest(t *testing.T, deadband float64, interval time.Duration) *currentUnderTest {
	t.Helper()
	clock := &fakeClock{t: time.UnixMilli(1764403200000)}
	p, err := New(openStore(t), Options{Brokers: []string{"tcp://127.0.0.1:1"}, Site: "site-0001", Agent: "gw-01", Logger: quiet,
		CurrentDeadband: &deadband, CurrentInterval: interval, Now: clock.Now,
		Resolutions: map[string]float64{"CH4-101": 0.01, "CO-102": 1}})
	if err != nil {
		t.Fatal(err)
	}
	return &currentUnderTest{t: t, p: p, clock: clock}
}

func (c *currentUnderTest) update(sensor string, v float64, status string) {
	c.p.UpdateCurrent(contract.Reading{Sensor: sensor, Type: "methane", TS: c.clock.Now().UnixMilli(), Value: &v, Unit: "%CH4", Status: status})
}

// take returns the message the session would publish now, validated
// against the schema and decoded; ok is false if none is due.
func (c *currentUnderTest) take() (contract.Current, bool) {
	c.t.Helper()
	c.p.mu.Lock()
	b := c.p.cur.take(c.clock.Now())
	c.p.mu.Unlock()
	if b == nil {
		return contract.Current{}, false
	}
	if err := contract.Validate(contract.KindCurrent, b); err != nil {
		c.t.Fatalf("current fails its schema: %v\n%s", err, b)
	}
	var cur contract.Current
	if err := json.Unmarshal(b, &cur); err != nil {
		c.t.Fatal(err)
	}
	if cur.TS != c.clock.Now().UnixMilli() {
		c.t.Errorf("current ts %d, want the time of the publish %d", cur.TS, c.clock.Now().UnixMilli())
	}
	return cur, true
}

func (c *currentUnderTest) mustTake(what string) contract.Current {
	c.t.Helper()
	cur, ok := c.take()
	if !ok {
		c.t.Fatalf("%s: no current published at +%v", what, c.clock.Now().Sub(time.UnixMilli(1764403200000)))
	}
	return cur
}

func (c *currentUnderTest) mustNotTake(what string) {
	c.t.Helper()
	if cur, ok := c.take(); ok {
		c.t.Fatalf("%s: current published at +%v: %+v", what, c.clock.Now().Sub(time.UnixMilli(1764403200000)), cur)
	}
}

func valueOf(t *testing.T, cur contract.Current, sensor string) (float64, string) {
	t.Helper()
	for _, r := range cur.Readings {
		if r.Sensor == sensor {
			if r.Value == nil {
				return 0, r.Status
			}
			return *r.Value, r.Status
		}
	}
	t.Fatalf("%s not in current %+v", sensor, cur)
	return 0, ""
}

// A change of status is published at once, or, within a second of the
// last publish, as soon as the second is up, although the value did not
// move and the interval is far off.
func TestCurrent_PublishedOnStatusChange(t *testing.T) {
	c := newCurrentUnderTest(t, 1, time.Minute)
	c.update("CH4-101", 0.50, "normal")
	c.mustTake("first reading")
	c.clock.Advance(3 * time.Second)
	c.update("CH4-101", 0.50, "alarm")
	if _, st := valueOf(t, c.mustTake("status normal → alarm"), "CH4-101"); st != "alarm" {
		t.Errorf("status %s, want alarm", st)
	}
	c.clock.Advance(300 * time.Millisecond)
	c.update("CH4-101", 0.50, "normal")
	c.mustNotTake("0.3 s after the last publish")
	if at, ok := c.p.currentDue(); !ok || !at.Equal(c.clock.Now().Add(700*time.Millisecond)) {
		t.Errorf("due at %v (%v), want 1 s after the last publish", at, ok)
	}
	c.clock.Advance(700 * time.Millisecond)
	if _, st := valueOf(t, c.mustTake("a second after the last"), "CH4-101"); st != "normal" {
		t.Errorf("status %s, want normal", st)
	}
	// A fault (no value) is a change of status too.
	c.clock.Advance(time.Second)
	c.p.UpdateCurrent(contract.Reading{Sensor: "CH4-101", Type: "methane", TS: 1, Unit: "%CH4", Status: "fault", Error: "no reply", Code: "timeout"})
	if _, st := valueOf(t, c.mustTake("fault"), "CH4-101"); st != "fault" {
		t.Errorf("status %s, want fault", st)
	}
}

// A value that stays within resolution × deadband of the value last
// published waits for the interval, even as it creeps; one that moves
// beyond it is published at once; a deadband of 0 publishes any change.
func TestCurrent_ValueWithinDeadbandWaitsForInterval(t *testing.T) {
	c := newCurrentUnderTest(t, 1, 10*time.Second)
	c.update("CH4-101", 0.50, "normal")
	c.mustTake("first reading")
	for i := 1; i < 10; i++ { // one count (0.01) off, every second
		c.clock.Advance(time.Second)
		c.update("CH4-101", []float64{0.51, 0.49}[i%2], "normal")
		c.mustNotTake("a move of one count, within the deadband")
	}
	c.clock.Advance(time.Second)
	if v, _ := valueOf(t, c.mustTake("the interval"), "CH4-101"); v != 0.51 && v != 0.49 {
		t.Errorf("value %g, want the latest", v)
	}
	c.clock.Advance(2 * time.Second)
	c.update("CH4-101", 0.53, "normal") // two counts from the 0.51 published
	if v, _ := valueOf(t, c.mustTake("a move of two counts"), "CH4-101"); v != 0.53 {
		t.Errorf("value %g, want 0.53", v)
	}

	zero := newCurrentUnderTest(t, 0, 10*time.Second)
	zero.update("CO-102", 10, "normal")
	zero.mustTake("first reading")
	zero.clock.Advance(time.Second)
	zero.update("CO-102", 11, "normal")
	if v, _ := valueOf(t, zero.mustTake("deadband 0, one count"), "CO-102"); v != 11 {
		t.Errorf("value %g, want 11", v)
	}
	zero.clock.Advance(time.Second)
	zero.update("CO-102", 11, "normal")
	zero.mustNotTake("deadband 0, the same value")
}

// However often statuses change, the snapshot is published at most once
// a second, and still at least once a second while they do.
func TestCurrent_NeverMoreThanOncePerSecond(t *testing.T) {
	c := newCurrentUnderTest(t, 0, time.Minute)
	var at []time.Time
	for i := range 100 { // 10 s of a status flapping every 100 ms
		c.update("CH4-101", float64(i), []string{"normal", "alarm"}[i%2])
		if _, ok := c.take(); ok {
			at = append(at, c.clock.Now())
		}
		c.clock.Advance(100 * time.Millisecond)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < time.Second {
			t.Fatalf("publishes %v apart (%d and %d)", gap, i-1, i)
		}
	}
	if len(at) != 10 {
		t.Errorf("%d publishes in 10 s of changes, want 10 (one a second)", len(at))
	}
}

// Readings that change nothing are republished every interval (with
// their new sample times); with no reading at all nothing is.
func TestCurrent_IntervalRepublishesUnchanged(t *testing.T) {
	c := newCurrentUnderTest(t, 1, 10*time.Second)
	start := c.clock.Now()
	var at []time.Duration
	var last contract.Current
	for range 31 {
		c.update("CH4-101", 0.50, "normal")
		c.update("CO-102", 7, "normal")
		if cur, ok := c.take(); ok {
			at = append(at, c.clock.Now().Sub(start))
			last = cur
		}
		c.clock.Advance(time.Second)
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second}
	if len(at) != len(want) {
		t.Fatalf("published at %v, want %v", at, want)
	}
	for i := range want {
		if at[i] != want[i] {
			t.Fatalf("published at %v, want %v", at, want)
		}
	}
	if len(last.Readings) != 2 || last.Readings[0].TS != start.Add(30*time.Second).UnixMilli() {
		t.Errorf("last snapshot %+v, want both sensors with the sample time of +30s", last)
	}
	c.clock.Advance(time.Hour)
	c.mustNotTake("no reading for an hour")
	if _, ok := c.p.currentDue(); ok {
		t.Error("due with nothing new")
	}
}

// A sensor no longer configured leaves the snapshot at once; a new
// connection republishes it (within a second of the last publish).
func TestCurrent_RemovedSensorAndReconnectPublishAtOnce(t *testing.T) {
	c := newCurrentUnderTest(t, 1, time.Minute)
	c.update("CH4-101", 0.5, "normal")
	c.update("CO-102", 7, "normal")
	c.mustTake("first")
	c.clock.Advance(2 * time.Second)
	c.p.SetSensors([]string{"CO-102"})
	if cur := c.mustTake("after a sensor was removed"); len(cur.Readings) != 1 || cur.Readings[0].Sensor != "CO-102" {
		t.Errorf("after SetSensors: %+v, want CO-102 only", cur.Readings)
	}
	c.clock.Advance(2 * time.Second)
	c.mustNotTake("nothing new")
	c.p.resendCurrent()
	c.mustTake("a new connection")
}

// UpdateCurrent wakes the session only when the snapshot may fall due
// sooner: not for every reading.
func TestCurrent_WakesTheSessionOnlyWhenDueSooner(t *testing.T) {
	c := newCurrentUnderTest(t, 1, time.Minute)
	woken := func() bool {
		select {
		case <-c.p.retainedCh:
			return true
		default:
			return false
		}
	}
	c.update("CH4-101", 0.5, "normal")
	if !woken() {
		t.Error("first reading: no wake")
	}
	c.mustTake("first")
	c.update("CH4-101", 0.5, "normal")
	if !woken() {
		t.Error("first reading since the publish: no wake (the interval must be armed)")
	}
	c.update("CH4-101", 0.5, "normal")
	if woken() {
		t.Error("a second unchanged reading woke the session")
	}
	c.update("CH4-101", 0.9, "normal")
	if !woken() {
		t.Error("a move beyond the deadband: no wake")
	}
	c.update("CH4-101", 0.1, "alarm")
	if woken() {
		t.Error("already due at the earliest: woke again")
	}
}

// The snapshot is byte for byte what contract.Marshal makes of the same
// readings (sorted by sensor), escapes, faults and number formats included.
func TestCurrent_EncodedAsContractMarshal(t *testing.T) {
	c := newCurrentUnderTest(t, 1, time.Minute)
	f := func(v float64) *float64 { return &v }
	rs := []contract.Reading{
		{Sensor: "b<&>", Type: "methane", TS: 1764403200123, Value: f(0.52), Unit: "%CH4", Status: "normal"},
		{Sensor: "a", Type: "co", TS: 1, Unit: "ppm", Status: "fault", Error: "reply \"late\"\n\\ ü \u2028", Code: "timeout"},
		{Sensor: "c", Type: "generic", TS: 2, Value: f(1e-7), Unit: "", Status: "alarm"},
		{Sensor: "d", Type: "generic", TS: 3, Value: f(-1.5e21), Unit: "m³", Status: "normal"},
		{Sensor: "e", Type: "generic", TS: 4, Value: f(123456789.125), Unit: "x", Status: "normal"},
		{Sensor: "f", Type: "generic", TS: 5, Value: f(0), Unit: "x", Status: "normal"},
		{Sensor: "g", Type: "generic", TS: 6, Value: f(-0.000001), Unit: "x", Status: "normal"},
		{Sensor: "h", Type: "generic", TS: 7, Value: f(1e20), Unit: "\x01", Status: "normal"},
	}
	for _, r := range rs {
		c.p.UpdateCurrent(r)
	}
	c.p.mu.Lock()
	got := c.p.cur.take(c.clock.Now())
	c.p.mu.Unlock()
	sorted := []contract.Reading{rs[1], rs[0], rs[2], rs[3], rs[4], rs[5], rs[6], rs[7]}
	want, err := contract.Marshal(contract.Current{V: contract.Version, Agent: "gw-01", Site: "site-0001", TS: c.clock.Now().UnixMilli(), Readings: sorted})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("encoded\n%s\nwant (contract.Marshal)\n%s", got, want)
	}
	if err := contract.Validate(contract.KindCurrent, got); err != nil {
		t.Fatal(err)
	}
	// Re-encoding only what changed gives the same as encoding all again.
	c.clock.Advance(time.Second)
	rs[4].Value, rs[4].TS = f(-3), 9
	c.p.UpdateCurrent(rs[4])
	c.p.mu.Lock()
	got = c.p.cur.take(c.clock.Now())
	c.p.mu.Unlock()
	sorted[4] = rs[4]
	want, _ = contract.Marshal(contract.Current{V: contract.Version, Agent: "gw-01", Site: "site-0001", TS: c.clock.Now().UnixMilli(), Readings: sorted})
	if string(got) != string(want) {
		t.Fatalf("after one change\n%s\nwant\n%s", got, want)
	}
}
