package safety

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

// TestEngine_InheritEditedActiveRule: editing a raised rule (a new output,
// a new restore value, an on-delay) never restores power by itself.
func TestEngine_InheritEditedActiveRule(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	rd := func(v float64) reading.Reading {
		return reading.Reading{Sensor: "CH4", Value: v, Status: reading.StatusNormal}
	}
	for _, tc := range []struct {
		name string
		edit func(*SensorRules)
		want string // inherit effects
	}{
		{"output added", func(sr *SensorRules) { sr.Rules[1].Outputs = []string{"X", "Y"} }, ""},
		{"restore value changed", func(sr *SensorRules) { sr.Rules[1].ClearBelow = ptr(1.1) }, ""},
		{"on-delay added", func(sr *SensorRules) { sr.Rules[1].For = 5 * time.Second }, ""},
		{"restore value now above the value clears", func(sr *SensorRules) { sr.Rules[1].ClearBelow = ptr(1.4) }, "X=on CH4/cutoff/cleared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, err := NewEngine([]SensorRules{methane(1.5, "X")})
			if err != nil {
				t.Fatal(err)
			}
			old.Apply(rd(1.6), t0)
			old.Apply(rd(1.35), t0.Add(time.Second)) // above the 1.0 restore: still cut
			sr := methane(1.5, "X")
			tc.edit(&sr)
			e, err := NewEngine([]SensorRules{sr})
			if err != nil {
				t.Fatal(err)
			}
			if got := changes(e.Inherit(old, t0.Add(2*time.Second))); got != tc.want {
				t.Fatalf("inherit effects %q, want %q", got, tc.want)
			}
			if cut, _ := e.Cut("X"); cut != (tc.want == "") {
				t.Fatalf("X cut = %v", cut)
			}
			if cut, known := e.Cut("Y"); known && !cut {
				t.Fatal("new output Y restored while its rule is raised")
			}
		})
	}
}
