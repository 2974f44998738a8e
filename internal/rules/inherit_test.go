package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

func methane(cutAt float64, outs ...string) SensorRules {
	return SensorRules{Sensor: "CH4", Type: "methane", Resolution: 0.01, Rules: []Rule{
		{Level: LevelAlarm, Above: ptr(1.0), ClearBelow: ptr(1.0)},
		{Level: LevelCutoff, Above: ptr(cutAt), ClearBelow: ptr(1.0), Outputs: outs},
	}}
}

func changes(fx Effects) string {
	var b []string
	for _, c := range fx.Changes {
		if c.Cut {
			b = append(b, c.Output+"=cut")
		} else {
			b = append(b, c.Output+"=on")
		}
	}
	for _, e := range fx.Events {
		b = append(b, e.Sensor+"/"+string(e.Level)+"/"+e.State)
	}
	return strings.Join(b, " ")
}

// TestEngine_Inherit: a reloaded engine continues where the old one was —
// outputs keep their state, unchanged raised rules stay raised without new
// events, changed rules are evaluated at the last value, and new outputs
// or never-seen sensors start in the safe state.
func TestEngine_Inherit(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	rd := func(v float64) reading.Reading {
		return reading.Reading{Sensor: "CH4", Value: v, Status: reading.StatusNormal}
	}
	newEngine := func(srs ...SensorRules) *Engine {
		e, err := NewEngine(srs)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	t.Run("unchanged rules keep outputs on, no events", func(t *testing.T) {
		old := newEngine(methane(1.5, "K1"))
		old.Apply(rd(0.5), at(0))
		e := newEngine(methane(1.5, "K1"))
		if got := changes(e.Inherit(old, at(1))); got != "" {
			t.Fatalf("inherit effects %q, want none", got)
		}
		if cut, _ := e.Cut("K1"); cut {
			t.Fatal("output dropped to cut by the reload")
		}
		if _, fx := e.Apply(rd(1.5), at(2)); changes(fx) != "K1=cut CH4/alarm/raised CH4/cutoff/raised" {
			t.Fatalf("after reload, 1.50 gives %q", changes(fx))
		}
	})
	t.Run("raised cut-off stays raised", func(t *testing.T) {
		old := newEngine(methane(1.5, "K1"))
		old.Apply(rd(1.6), at(0))
		e := newEngine(methane(1.5, "K1"))
		if got := changes(e.Inherit(old, at(1))); got != "" {
			t.Fatalf("inherit effects %q, want none", got)
		}
		if cut, _ := e.Cut("K1"); !cut {
			t.Fatal("cut output restored by the reload")
		}
		if _, fx := e.Apply(rd(0.99), at(2)); changes(fx) != "K1=on CH4/alarm/cleared CH4/cutoff/cleared" {
			t.Fatalf("restore after reload gives %q", changes(fx))
		}
	})
	t.Run("stricter limit acts on the last value", func(t *testing.T) {
		old := newEngine(methane(1.5, "K1"))
		old.Apply(rd(1.2), at(0)) // alarm only
		e := newEngine(methane(1.2, "K1"))
		if got := changes(e.Inherit(old, at(1))); got != "K1=cut CH4/cutoff/raised" {
			t.Fatalf("inherit effects %q", got)
		}
	})
	t.Run("new output follows known sensors, stays cut for unread ones", func(t *testing.T) {
		old := newEngine(methane(1.5, "K1"))
		old.Apply(rd(0.5), at(0))
		fan := SensorRules{Sensor: "FAN", Type: "digital", Resolution: 1, Rules: []Rule{{Level: LevelCutoff, Equals: ptr(false), Outputs: []string{"K3"}}}}
		e := newEngine(methane(1.5, "K1", "K2"), fan)
		if got := changes(e.Inherit(old, at(1))); got != "K2=on" {
			t.Fatalf("inherit effects %q, want K2 restored (CH4 read 0.5 just before)", got)
		}
		if cut, _ := e.Cut("K3"); !cut {
			t.Fatal("K3 restored although FAN was never read")
		}
		if cut, _ := e.Cut("K1"); cut {
			t.Fatal("K1 dropped")
		}
	})
	t.Run("fault lockout carries over", func(t *testing.T) {
		old := newEngine(methane(1.5, "K1"))
		old.Apply(rd(0.5), at(0))
		old.Apply(reading.Reading{Sensor: "CH4", Status: reading.StatusFault, Err: "timeout"}, at(1))
		old.Apply(rd(0.5), at(2)) // valid again, lockout still running (10 s)
		e := newEngine(methane(1.5, "K1"))
		e.Inherit(old, at(3))
		if cut, _ := e.Cut("K1"); !cut {
			t.Fatal("lockout released by the reload")
		}
		if fx := e.Tick(at(12)); changes(fx) != "K1=on" {
			t.Fatalf("unlock after 10 s of valid readings gives %q", changes(fx))
		}
	})
}
