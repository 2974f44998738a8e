package safety

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// TestNextDue_TickingOnlyWhenDueChangesNothing runs two engines side by
// side on the same random readings: one ticks every 10 ms, the other only
// while its NextDue has come (or is unknown). Every event, output change
// and status must be the same, at the same time: no timer (stale deadline,
// on-delay, fault unlock, end of calibration) falls before NextDue.
func TestNextDue_TickingOnlyWhenDueChangesNothing(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		durs := []time.Duration{0, 300 * time.Millisecond, time.Second, 2500 * time.Millisecond}
		sensors := []SensorRules{
			{Sensor: "A", Resolution: 0.01, StaleAfter: durs[rng.IntN(4)], FaultUnlockAfter: durs[1+rng.IntN(3)], Rules: []Rule{
				{Level: LevelAlarm, Above: f(1), For: durs[rng.IntN(4)]},
				{Level: LevelCutoff, Above: f(1.5), For: durs[rng.IntN(3)], Outputs: []string{"K1"}},
			}},
			{Sensor: "B", Resolution: 0.1, StaleAfter: durs[rng.IntN(4)], Rules: []Rule{
				{Level: LevelAlarm, Below: f(2), ClearAbove: f(3), For: durs[rng.IntN(4)], Outputs: []string{"K2"}, OnFault: OnFaultCut},
			}},
		}
		ref, err := NewEngine(sensors)
		if err != nil {
			t.Fatal(err)
		}
		lazy, _ := NewEngine(sensors)
		var log []string
		record := func(who string, at time.Duration, fx Effects) {
			for _, ev := range fx.Events {
				log = append(log, fmt.Sprintf("%s %v %s %s %s", who, at, ev.Sensor, ev.Level, ev.State))
			}
			for _, c := range fx.Changes {
				log = append(log, fmt.Sprintf("%s %v %s cut=%v", who, at, c.Output, c.Cut))
			}
		}
		var refLog, lazyLog []string
		for step := range 1500 { // 15 s
			at := time.Duration(step) * 10 * time.Millisecond
			now := t0.Add(at)
			if rng.IntN(40) == 0 {
				r := reading.Reading{Sensor: []string{"A", "B"}[rng.IntN(2)], Time: now, Status: reading.StatusNormal}
				switch rng.IntN(6) {
				case 0:
					r.Status, r.Err = reading.StatusFault, "timeout"
				case 1:
					r.Value = math.NaN()
				default:
					r.Value = []float64{0.5, 1.2, 1.7, 2.5, 3.5}[rng.IntN(5)]
				}
				log = log[:0]
				s1, fx := ref.Apply(r, now)
				record("", at, fx)
				s2, fx := lazy.Apply(r, now)
				record("", at, fx)
				if s1 != s2 {
					t.Fatalf("seed %d at %v: status %s vs %s", seed, at, s1, s2)
				}
			}
			if rng.IntN(300) == 0 {
				until := now.Add(durs[rng.IntN(4)])
				ref.SetCalibrating("A", until)
				lazy.SetCalibrating("A", until)
			}
			log = log[:0]
			record("", at, ref.Tick(now))
			refLog = append(refLog, log...)
			log = log[:0]
			if due, known := lazy.NextDue(); !known || (!due.IsZero() && !now.Before(due)) {
				record("", at, lazy.Tick(now))
			}
			lazyLog = append(lazyLog, log...)
			for _, id := range []string{"A", "B"} {
				s1, _ := ref.Status(id)
				s2, _ := lazy.Status(id)
				if s1 != s2 {
					t.Fatalf("seed %d at %v: sensor %s status %s, ticking only when due %s", seed, at, id, s1, s2)
				}
			}
		}
		if !reflect.DeepEqual(refLog, lazyLog) {
			t.Fatalf("seed %d: ticking every 10 ms\n%q\nticking only when due\n%q", seed, refLog, lazyLog)
		}
	}
}

// TestFastTicks_WhenSomethingTimedIsNear: the core ticks every TickEvery
// while a calibration runs, a timer is unknown or within IdleTickEvery +
// TickEvery (the end of the start-up settle, an output's unconfirmed cut
// and its heartbeat are some); otherwise it ticks every IdleTickEvery.
func TestFastTicks_WhenSomethingTimedIsNear(t *testing.T) {
	sensorOnly := func() Spec {
		s := faceSpec()
		s.Outputs = nil
		for i := range s.Sensors[0].Rules {
			s.Sensors[0].Rules[i].Outputs = nil
		}
		s.Sensors[0].StaleAfter = 3 * time.Second
		return s
	}
	newCore := func(spec Spec) (*Core, *fakeClock) {
		clk := newFakeClock()
		c, err := New(spec, map[string]Lane{"K1": &fakeLane{}}, Options{Clock: clk, RestartSettle: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c, clk
	}
	settle := func(c *Core, clk *fakeClock) time.Time {
		clk.advance(time.Second)
		c.step()
		return clk.Now()
	}

	c, clk := newCore(sensorOnly())
	if c.step(); !c.st.fast {
		t.Error("before the first tick (bound unknown): not fast")
	}
	clk.advance(TickEvery)
	if c.step(); c.st.fast {
		t.Error("start-up settle 0.9 s away, nothing else timed: fast")
	}
	clk.advance(400 * time.Millisecond)
	if c.step(); !c.st.fast {
		t.Error("start-up settle 0.5 s away: not fast")
	}
	now := settle(c, clk)
	if c.st.fast {
		t.Fatal("settled, nothing timed: fast")
	}
	c.st.engine.Apply(readingAt("CH4", 0.3, now), now)
	c.step()
	if c.st.fast {
		t.Error("stale deadline 3 s away: fast")
	}
	clk.advance(3*time.Second - IdleTickEvery - TickEvery)
	if c.step(); c.st.fast {
		t.Error("stale deadline exactly IdleTickEvery+TickEvery away: fast")
	}
	clk.advance(time.Millisecond)
	if c.step(); !c.st.fast {
		t.Error("stale deadline within IdleTickEvery+TickEvery: not fast")
	}

	c, clk = newCore(sensorOnly())
	now = settle(c, clk)
	c.st.engine.Apply(readingAt("CH4", 1.2, now), now) // alarm 1.0 with no on-delay: raised, nothing pending
	if c.step(); c.st.fast {
		t.Error("an alarm raised, nothing pending: fast")
	}
	spec := sensorOnly()
	spec.Sensors[0].Rules = append(spec.Sensors[0].Rules, Rule{Level: LevelRed, Above: f(0.9), For: 10 * time.Second})
	c, clk = newCore(spec)
	now = settle(c, clk)
	c.st.engine.Apply(readingAt("CH4", 1.2, now), now)
	clk.advance(9500 * time.Millisecond)
	c.st.engine.Apply(readingAt("CH4", 1.2, clk.Now()), clk.Now()) // keeps the stale deadline away
	if c.step(); !c.st.fast {
		t.Error("an on-delay ending in 0.5 s: not fast")
	}

	c, clk = newCore(sensorOnly())
	settle(c, clk)
	c.st.calUntil["CH4"] = clk.Now().Add(time.Hour)
	if c.step(); !c.st.fast {
		t.Error("calibration running: not fast")
	}

	spec = sensorOnly()
	c, clk = newCore(spec)
	now = settle(c, clk)
	spec.Sensors[0].CalibrationDue = now.Add(CalibrationWarnBefore + 300*time.Millisecond)
	c.installCalibration(spec, now)
	if c.step(); !c.st.fast {
		t.Error("calibration due dates just installed (not yet computed): not fast")
	}
	clk.advance(TickEvery)
	if c.step(); !c.st.fast {
		t.Error("calibration due warning in 0.2 s: not fast")
	}

	c, clk = newCore(faceSpec()) // K1 is cut at start; its lane never confirms
	settle(c, clk)
	if c.step(); c.st.fast {
		t.Error("an output's cut unconfirmed, 1 s of its 2 s left: fast")
	}
	clk.advance(500 * time.Millisecond)
	if c.step(); !c.st.fast {
		t.Error("an output's cut unconfirmed, 0.5 s of its 2 s left: not fast")
	}
	o := c.st.byName["K1"]
	c.Observe(Observation{Output: "K1", Gen: o.gen, Known: true, Confirmed: true})
	if c.step(); c.st.fast {
		t.Error("an output confirmed cut, nothing else timed: fast")
	}
	o.spec.Heartbeat = time.Second
	if c.step(); !c.st.fast {
		t.Error("a heartbeat never sent: not fast")
	}
	clk.advance(TickEvery)
	if c.step(); c.st.fast {
		t.Error("a heartbeat just sent, the next 1 s away: fast")
	}
}

// TestCore_IdleCoreStillActsOnAStaleDeadlineWithinATick drives the Core's
// own loop (no request wakes it): with no output and nothing timed near,
// it ticks every IdleTickEvery, and when a sensor's stale deadline comes
// near it ticks every TickEvery again, so the stale fault is raised at the
// first TickEvery after the deadline, as before.
func TestCore_IdleCoreStillActsOnAStaleDeadlineWithinATick(t *testing.T) {
	spec := faceSpec()
	spec.Outputs = nil
	for i := range spec.Sensors[0].Rules {
		spec.Sensors[0].Rules[i].Outputs = nil
	}
	spec.Sensors[0].StaleAfter = 3 * time.Second
	r := newRig(t, spec, Options{RestartSettle: 200 * time.Millisecond})
	r.sync() // the loop is running: its tickers count from start
	start := r.clk.Now()
	r.advance(250 * time.Millisecond) // settled
	r.offer("CH4", 0.3)               // at 0.25 s: stale after 3.25 s
	waitLoop := func(at time.Time) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !r.core.LastLoop().Equal(at) {
			if time.Now().After(deadline) {
				t.Fatalf("the core did not run at %v (last loop at %v)", at.Sub(start), r.core.LastLoop().Sub(start))
			}
			time.Sleep(time.Millisecond)
		}
	}
	r.clk.advance(50 * time.Millisecond) // align with the tickers: 0.3 s
	for at := 400 * time.Millisecond; at <= 3300*time.Millisecond; at += TickEvery {
		r.clk.advance(TickEvery)
		if at%IdleTickEvery == 0 || at > 3*time.Second { // idle ticks; fast ones once the deadline is near
			waitLoop(start.Add(at))
		}
	}
	r.items = r.core.Outbox().Take(r.items)
	as := r.alarms()
	if len(as) != 1 || as[0].Level != string(LevelFault) || !as[0].Time.Equal(start.Add(3300*time.Millisecond)) {
		t.Fatalf("want one fault at 3.3 s, got %+v", as)
	}
}
