package safety

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }
func b(v bool) *bool       { return &v }

// step is one input to the engine and what must follow from it.
type step struct {
	at     time.Duration // engine time since t0
	sensor string        // "" = the first sensor of the case
	v      float64
	fault  bool
	tick   bool // Tick instead of Apply
	// expectations
	status  reading.Status  // status returned by Apply (or Status after Tick); "" = not checked
	events  []string        // exactly these events, as "sensor level state", in order
	cut     map[string]bool // output states after the step
	changes []string        // exactly these output changes, as "OUT cut" / "OUT restored"
}

func run(t *testing.T, e *Engine, first string, steps []step) {
	t.Helper()
	for i, st := range steps {
		now := t0.Add(st.at)
		sensor := st.sensor
		if sensor == "" {
			sensor = first
		}
		var status reading.Status
		var fx Effects
		what := fmt.Sprintf("step %d (t=%v %s", i, st.at, sensor)
		if st.tick {
			fx = e.Tick(now)
			status, _ = e.Status(sensor)
			what += " tick)"
		} else {
			r := reading.Reading{Sensor: sensor, Time: now, Value: st.v, Status: reading.StatusNormal}
			if st.fault {
				r = reading.Reading{Sensor: sensor, Time: now, Status: reading.StatusFault, Err: "timeout"}
				what += " fault)"
			} else {
				what += fmt.Sprintf(" %v)", st.v)
			}
			status, fx = e.Apply(r, now)
		}
		if st.status != "" && status != st.status {
			t.Errorf("%s: status %q, want %q", what, status, st.status)
		}
		var got []string
		for _, ev := range fx.Events {
			got = append(got, ev.Sensor+" "+string(ev.Level)+" "+ev.State)
			if !ev.Time.Equal(now) {
				t.Errorf("%s: event time %v, want %v", what, ev.Time, now)
			}
		}
		if !slices.Equal(got, st.events) {
			t.Errorf("%s: events %q, want %q", what, got, st.events)
		}
		if st.changes != nil || len(fx.Changes) > 0 {
			var ch []string
			for _, c := range fx.Changes {
				s := c.Output + " restored"
				if c.Cut {
					s = c.Output + " cut"
				}
				ch = append(ch, s)
			}
			if !slices.Equal(ch, st.changes) {
				t.Errorf("%s: changes %q, want %q", what, ch, st.changes)
			}
		}
		for out, want := range st.cut {
			got, known := e.Cut(out)
			if !known || got != want {
				t.Errorf("%s: output %s cut=%v (known %v), want cut=%v", what, out, got, known, want)
			}
		}
	}
}

func mustEngine(t *testing.T, sensors ...SensorRules) *Engine {
	t.Helper()
	e, err := NewEngine(sensors)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// coalFace is a methane sensor with the coal_face row: alarm ≥ 1.0,
// cut-off ≥ 1.5, restore < 1.0.
func coalFace(id string, outs ...string) SensorRules {
	return SensorRules{Sensor: id, Type: "methane", Resolution: 0.01, Rules: []Rule{
		{Level: LevelAlarm, Above: f(1.0), ClearBelow: f(1.0)},
		{Level: LevelCutoff, Above: f(1.5), ClearBelow: f(1.0), Outputs: outs},
	}}
}

func TestEngine_Apply(t *testing.T) {
	const (
		N  = reading.StatusNormal
		A  = reading.StatusAlarm
		A2 = reading.StatusAlarm2
		C  = reading.StatusCutoff
		F  = reading.StatusFault
		CA = reading.StatusCalibrating
	)
	cases := []struct {
		name    string
		sensors []SensorRules
		steps   []step
	}{
		{
			name: "levels/precedence",
			sensors: []SensorRules{{Sensor: "L", Resolution: 0.1, Rules: []Rule{
				{Level: LevelCutoff, Above: f(7)},
				{Level: LevelBlue, Above: f(1)},
				{Level: LevelYellow, Above: f(2)},
				{Level: LevelOrange, Above: f(3)},
				{Level: LevelRed, Above: f(4)},
				{Level: LevelAlarm, Above: f(5)},
				{Level: LevelAlarm2, Above: f(6)},
			}}},
			steps: []step{
				{at: 0, v: 0.9, status: N},
				{at: 1, v: 1, status: reading.StatusBlue, events: []string{"L blue raised"}},
				{at: 2, v: 2, status: reading.StatusYellow, events: []string{"L yellow raised"}},
				{at: 3, v: 3, status: reading.StatusOrange, events: []string{"L orange raised"}},
				{at: 4, v: 4, status: reading.StatusRed, events: []string{"L red raised"}},
				{at: 5, v: 5, status: A, events: []string{"L alarm raised"}},
				{at: 6, v: 6, status: A2, events: []string{"L alarm2 raised"}},
				{at: 7, v: 7, status: C, events: []string{"L cutoff raised"}},
				{at: 8, v: 4.5, status: reading.StatusRed, events: []string{"L cutoff cleared", "L alarm cleared", "L alarm2 cleared"}},
				{at: 9, v: 0, status: N, events: []string{"L blue cleared", "L yellow cleared", "L orange cleared", "L red cleared"}},
				{at: 10, v: 8, status: C, events: []string{"L cutoff raised", "L blue raised", "L yellow raised", "L orange raised", "L red raised", "L alarm raised", "L alarm2 raised"}},
			},
		},
		{
			name:    "above/boundaries_coal_face",
			sensors: []SensorRules{coalFace("CH4", "PWR")},
			steps: []step{
				{v: 0.99, status: N, changes: []string{"PWR restored"}},
				{v: 1.00, status: A, events: []string{"CH4 alarm raised"}, cut: map[string]bool{"PWR": false}},
				{v: 1.49, status: A},
				{v: 1.4949999, status: A}, // 1.49 in the sensor's resolution
				{v: 1.4999999, status: C, events: []string{"CH4 cutoff raised"}, changes: []string{"PWR cut"}}, // 1.50 in the sensor's resolution
				{v: 1.51, status: C},
				{v: 1.2, status: C, cut: map[string]bool{"PWR": true}},
				{v: 1.00, status: C, cut: map[string]bool{"PWR": true}}, // equal to restore: no restore
				{v: 1.0000001, status: C},
				{v: 0.99, status: N, events: []string{"CH4 alarm cleared", "CH4 cutoff cleared"}, changes: []string{"PWR restored"}},
				{v: 1.50, status: C, events: []string{"CH4 alarm raised", "CH4 cutoff raised"}, changes: []string{"PWR cut"}},
			},
		},
		{
			name:    "above/default_clear_is_trigger_limit",
			sensors: []SensorRules{{Sensor: "T", Resolution: 1, Rules: []Rule{{Level: LevelAlarm, Above: f(26)}}}},
			steps: []step{
				{v: 25, status: N},
				{v: 26, status: A, events: []string{"T alarm raised"}},
				{v: 26, status: A},
				{v: 25, status: N, events: []string{"T alarm cleared"}},
			},
		},
		{
			name: "below/boundaries",
			sensors: []SensorRules{{Sensor: "O2", Resolution: 0.1, Rules: []Rule{
				{Level: LevelAlarm, Below: f(20)},
				{Level: LevelAlarm2, Below: f(19.5), ClearAbove: f(19.8)},
			}}},
			steps: []step{
				{v: 20.1, status: N},
				{v: 20.0, status: A, events: []string{"O2 alarm raised"}},
				{v: 20.0, status: A},
				{v: 20.1, status: N, events: []string{"O2 alarm cleared"}},
				{v: 19.5000001, status: A2, events: []string{"O2 alarm raised", "O2 alarm2 raised"}},
				{v: 19.6, status: A2},
				{v: 19.8, status: A2}, // equal to clear_above: stays
				{v: 19.9, status: A, events: []string{"O2 alarm2 cleared"}},
				{v: 19.6, status: A}, // above its trigger limit: not raised again
			},
		},
		{
			name: "equals/digital",
			sensors: []SensorRules{{Sensor: "DOOR", Rules: []Rule{
				{Level: LevelAlarm, Equals: b(true), Outputs: []string{"BEACON"}},
			}}},
			steps: []step{
				{v: 0, status: N, changes: []string{"BEACON restored"}},
				{v: 1, status: A, events: []string{"DOOR alarm raised"}, changes: []string{"BEACON cut"}},
				{v: 1, status: A},
				{v: 0, status: N, events: []string{"DOOR alarm cleared"}, changes: []string{"BEACON restored"}},
			},
		},
		{
			name: "on_delay",
			sensors: []SensorRules{{Sensor: "W", Resolution: 0.01, Rules: []Rule{
				{Level: LevelAlarm, Above: f(1), For: 5 * time.Second, Outputs: []string{"HORN"}},
			}}},
			steps: []step{
				{at: 0, v: 1.2, status: N, changes: []string{"HORN restored"}},
				{at: 3 * time.Second, v: 1.2, status: N},
				{at: 4 * time.Second, v: 0.9, status: N}, // interrupts the delay
				{at: 5 * time.Second, v: 1.0, status: N}, // starts again at 5 s
				{at: 9 * time.Second, tick: true, status: N},
				{at: 9999 * time.Millisecond, tick: true, status: N},
				{at: 10 * time.Second, tick: true, status: A, events: []string{"W alarm raised"}, changes: []string{"HORN cut"}},
				{at: 11 * time.Second, v: 0.99, status: N, events: []string{"W alarm cleared"}, changes: []string{"HORN restored"}}, // clearing is immediate
				{at: 12 * time.Second, v: 1.1, status: N},
				{at: 13 * time.Second, fault: true, status: F, events: []string{"W fault raised"}}, // a fault breaks the delay
				{at: 14 * time.Second, v: 1.1, status: N, events: []string{"W fault cleared"}},
				{at: 18 * time.Second, tick: true, status: N},
				{at: 19 * time.Second, v: 1.1, status: A, events: []string{"W alarm raised"}, changes: []string{"HORN cut"}}, // 14 s + 5 s, by Apply
			},
		},
		{
			name:    "fault/lockout_and_stable_unlock",
			sensors: []SensorRules{coalFace("CH4", "PWR")},
			steps: []step{
				{at: 0, v: 0.5, status: N, changes: []string{"PWR restored"}},
				{at: 1 * time.Second, fault: true, status: F, events: []string{"CH4 fault raised"}, changes: []string{"PWR cut"}},
				{at: 2 * time.Second, fault: true, status: F},
				{at: 3 * time.Second, v: 0.5, status: N, events: []string{"CH4 fault cleared"}, cut: map[string]bool{"PWR": true}},
				{at: 5 * time.Second, fault: true, status: F, events: []string{"CH4 fault raised"}},
				{at: 6 * time.Second, v: 0.5, status: N, events: []string{"CH4 fault cleared"}}, // the stable period starts again
				{at: 15 * time.Second, tick: true, cut: map[string]bool{"PWR": true}},
				{at: 15999 * time.Millisecond, v: 0.5, status: N, cut: map[string]bool{"PWR": true}},
				{at: 16 * time.Second, tick: true, status: N, changes: []string{"PWR restored"}},
			},
		},
		{
			name:    "fault/lockout_then_over_limit",
			sensors: []SensorRules{coalFace("CH4", "PWR")},
			steps: []step{
				{at: 0, v: 0.5, changes: []string{"PWR restored"}},
				{at: 1 * time.Second, fault: true, changes: []string{"PWR cut"}, events: []string{"CH4 fault raised"}},
				{at: 2 * time.Second, v: 1.6, status: C, events: []string{"CH4 fault cleared", "CH4 alarm raised", "CH4 cutoff raised"}},
				{at: 13 * time.Second, v: 1.6, status: C, cut: map[string]bool{"PWR": true}}, // unlocked, but over the limit
				{at: 14 * time.Second, v: 0.9, status: N, events: []string{"CH4 alarm cleared", "CH4 cutoff cleared"}, changes: []string{"PWR restored"}},
			},
		},
		{
			name: "fault/hold_keeps_state",
			sensors: []SensorRules{{Sensor: "CO", Type: "co", Resolution: 1, Rules: []Rule{
				{Level: LevelAlarm, Above: f(24), Outputs: []string{"SIREN"}},
			}}},
			steps: []step{
				{at: 0, v: 10, changes: []string{"SIREN restored"}},
				{at: 1 * time.Second, fault: true, status: F, events: []string{"CO fault raised"}, cut: map[string]bool{"SIREN": false}},
				{at: 2 * time.Second, v: 30, status: A, events: []string{"CO fault cleared", "CO alarm raised"}, changes: []string{"SIREN cut"}},
				{at: 3 * time.Second, fault: true, status: F, events: []string{"CO fault raised"}, cut: map[string]bool{"SIREN": true}},
				{at: 4 * time.Second, v: 10, status: N, events: []string{"CO fault cleared", "CO alarm cleared"}, changes: []string{"SIREN restored"}},
			},
		},
		{
			name: "fault/explicit_cut_on_a_non_methane_alarm",
			sensors: []SensorRules{{Sensor: "LVL", Type: "level", Resolution: 0.01, FaultUnlockAfter: 2 * time.Second, Rules: []Rule{
				{Level: LevelRed, Above: f(3.5), Outputs: []string{"PUMP-STOP"}, OnFault: OnFaultCut},
			}}},
			steps: []step{
				{at: 0, v: 1, changes: []string{"PUMP-STOP restored"}},
				{at: 1 * time.Second, fault: true, changes: []string{"PUMP-STOP cut"}, events: []string{"LVL fault raised"}},
				{at: 2 * time.Second, v: 1, events: []string{"LVL fault cleared"}},
				{at: 4 * time.Second, tick: true, changes: []string{"PUMP-STOP restored"}},
			},
		},
		{
			name: "fault/startup_fault_keeps_outputs_cut",
			sensors: []SensorRules{{Sensor: "CH4", Type: "methane", Resolution: 0.01, Rules: []Rule{
				{Level: LevelCutoff, Above: f(1.5), ClearBelow: f(1.0), Outputs: []string{"PWR"}},
			}}},
			steps: []step{
				{at: 0, tick: true, cut: map[string]bool{"PWR": true}},
				{at: 1 * time.Second, fault: true, status: F, events: []string{"CH4 fault raised"}, cut: map[string]bool{"PWR": true}},
				{at: 2 * time.Second, v: 0.3, status: N, events: []string{"CH4 fault cleared"}, cut: map[string]bool{"PWR": true}},
				{at: 12 * time.Second, v: 0.3, status: N, changes: []string{"PWR restored"}},
			},
		},
		{
			name: "interlock/methane_and_fan",
			sensors: []SensorRules{
				coalFace("CH4", "PWR-1"),
				{Sensor: "FAN-1-RUNNING", Type: "digital", Rules: []Rule{
					{Level: LevelCutoff, Equals: b(false), Outputs: []string{"PWR-1"}},
				}},
			},
			steps: []step{
				{at: 0, tick: true, cut: map[string]bool{"PWR-1": true}},                               // start-up: cut
				{at: 1, v: 0.3, status: N, cut: map[string]bool{"PWR-1": true}},                        // fan not read yet
				{at: 2, sensor: "FAN-1-RUNNING", v: 1, status: N, changes: []string{"PWR-1 restored"}}, // both valid, both clear
				{at: 3, sensor: "FAN-1-RUNNING", v: 0, status: C, events: []string{"FAN-1-RUNNING cutoff raised"}, changes: []string{"PWR-1 cut"}},
				{at: 4, v: 1.6, status: C, events: []string{"CH4 alarm raised", "CH4 cutoff raised"}},
				{at: 5, sensor: "FAN-1-RUNNING", v: 1, status: N, events: []string{"FAN-1-RUNNING cutoff cleared"}, cut: map[string]bool{"PWR-1": true}}, // methane still demands
				{at: 6, v: 1.0, status: C, cut: map[string]bool{"PWR-1": true}},                                                                          // at restore: no restore
				{at: 7, v: 0.99, status: N, events: []string{"CH4 alarm cleared", "CH4 cutoff cleared"}, changes: []string{"PWR-1 restored"}},
				{at: 8, v: 1.7, status: C, events: []string{"CH4 alarm raised", "CH4 cutoff raised"}, changes: []string{"PWR-1 cut"}},
				{at: 9, sensor: "FAN-1-RUNNING", v: 0, status: C, events: []string{"FAN-1-RUNNING cutoff raised"}},
				{at: 10, v: 0.5, status: N, events: []string{"CH4 alarm cleared", "CH4 cutoff cleared"}, cut: map[string]bool{"PWR-1": true}}, // fan still demands
				{at: 11, sensor: "FAN-1-RUNNING", v: 1, events: []string{"FAN-1-RUNNING cutoff cleared"}, changes: []string{"PWR-1 restored"}},
			},
		},
		{
			name: "interlock/fan_fault_locks_out",
			sensors: []SensorRules{
				coalFace("CH4", "PWR-1"),
				{Sensor: "FAN-1-RUNNING", Type: "digital", FaultUnlockAfter: 3 * time.Second, Rules: []Rule{
					{Level: LevelCutoff, Equals: b(false), Outputs: []string{"PWR-1"}}, // cutoff: on_fault defaults to cut
				}},
			},
			steps: []step{
				{at: 0, v: 0.3},
				{at: 0, sensor: "FAN-1-RUNNING", v: 1, changes: []string{"PWR-1 restored"}},
				{at: 1 * time.Second, sensor: "FAN-1-RUNNING", fault: true, status: F, events: []string{"FAN-1-RUNNING fault raised"}, changes: []string{"PWR-1 cut"}},
				{at: 2 * time.Second, sensor: "FAN-1-RUNNING", v: 1, status: N, events: []string{"FAN-1-RUNNING fault cleared"}},
				{at: 5 * time.Second, tick: true, changes: []string{"PWR-1 restored"}},
			},
		},
		{
			name:    "calibration",
			sensors: []SensorRules{coalFace("CH4", "PWR")},
			steps: []step{
				{at: 0, v: 0.5, changes: []string{"PWR restored"}},
				// SetCalibrating(CH4, t0+60s) is called by the test below before step 1.
				{at: 1 * time.Second, v: 1.6, status: CA, events: []string{"CH4 alarm raised", "CH4 cutoff raised"}, changes: []string{"PWR cut"}},
				{at: 2 * time.Second, fault: true, status: F, events: []string{"CH4 fault raised"}},
				{at: 3 * time.Second, v: 1.6, status: CA, events: []string{"CH4 fault cleared"}},
				{at: 59 * time.Second, tick: true, status: CA},
				{at: 60 * time.Second, tick: true, status: C},
			},
		},
		{
			name:    "stale/no_reading_is_a_fault",
			sensors: []SensorRules{{Sensor: "CH4", Type: "methane", Resolution: 0.01, StaleAfter: 3 * time.Second, FaultUnlockAfter: time.Second, Rules: coalFace("", "PWR").Rules}},
			steps: []step{
				{at: 0, v: 0.2, changes: []string{"PWR restored"}},
				{at: 3 * time.Second, tick: true, status: N},
				{at: 3001 * time.Millisecond, tick: true, status: F, events: []string{"CH4 fault raised"}, changes: []string{"PWR cut"}},
				{at: 5 * time.Second, tick: true, status: F},
				{at: 6 * time.Second, v: 0.2, status: N, events: []string{"CH4 fault cleared"}},
				{at: 7 * time.Second, tick: true, changes: []string{"PWR restored"}},
			},
		},
		{
			name:    "unknown_sensor",
			sensors: []SensorRules{coalFace("CH4", "PWR")},
			steps: []step{
				{sensor: "X", v: 99, status: N, cut: map[string]bool{"PWR": true}},
				{sensor: "X", fault: true, status: F},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := mustEngine(t, c.sensors...)
			steps := c.steps
			if c.name == "calibration" {
				run(t, e, c.sensors[0].Sensor, steps[:1])
				if !e.SetCalibrating("CH4", t0.Add(60*time.Second)) {
					t.Fatal("SetCalibrating(CH4) = false")
				}
				steps = steps[1:]
			}
			run(t, e, c.sensors[0].Sensor, steps)
		})
	}
}

func TestEngine_eventDetails(t *testing.T) {
	e := mustEngine(t, coalFace("CH4", "PWR-A", "PWR-B"))
	e.SetCalibrating("CH4", t0.Add(time.Minute))
	_, fx := e.Apply(reading.Reading{Sensor: "CH4", Value: 1.52, Status: reading.StatusNormal}, t0)
	if len(fx.Events) != 2 {
		t.Fatalf("events %+v", fx.Events)
	}
	cut := fx.Events[1]
	if cut.Level != LevelCutoff || cut.State != StateRaised || cut.Value != 1.52 || !cut.Valid || cut.Limit != 1.5 ||
		!slices.Equal(cut.Outputs, []string{"PWR-A", "PWR-B"}) || !cut.Calibration || !cut.Time.Equal(t0) {
		t.Errorf("cutoff event %+v", cut)
	}
	_, fx = e.Apply(reading.Reading{Sensor: "CH4", Status: reading.StatusFault, Err: "exception 2, illegal data address"}, t0.Add(time.Second))
	if len(fx.Events) != 1 {
		t.Fatalf("events %+v", fx.Events)
	}
	ft := fx.Events[0]
	if ft.Level != LevelFault || ft.Valid || ft.Reason != "exception 2, illegal data address" || !slices.Equal(ft.Outputs, []string{"PWR-A", "PWR-B"}) {
		t.Errorf("fault event %+v", ft)
	}
	_, fx = e.Apply(reading.Reading{Sensor: "CH4", Value: 0.8, Status: reading.StatusNormal}, t0.Add(2*time.Second))
	var limits []float64
	for _, ev := range fx.Events {
		if ev.State == StateCleared && ev.Level != LevelFault {
			limits = append(limits, ev.Limit)
		}
	}
	if !slices.Equal(limits, []float64{1.0, 1.0}) {
		t.Errorf("clear limits %v, want the restore value 1.0 twice", limits)
	}
}

func TestEngine_startupState(t *testing.T) {
	e := mustEngine(t, coalFace("CH4", "PWR-1"), SensorRules{Sensor: "FAN", Rules: []Rule{{Level: LevelCutoff, Equals: b(false), Outputs: []string{"PWR-1", "PWR-2"}}}})
	if got := e.Outputs(); !slices.Equal(got, []string{"PWR-1", "PWR-2"}) {
		t.Fatalf("Outputs() = %q", got)
	}
	for _, o := range e.Outputs() {
		if cut, known := e.Cut(o); !cut || !known {
			t.Errorf("%s: cut=%v known=%v at start, want cut", o, cut, known)
		}
	}
	if _, known := e.Cut("NOPE"); known {
		t.Error("unknown output reported known")
	}
	if st, ok := e.Status("CH4"); !ok || st != reading.StatusNormal {
		t.Errorf("Status(CH4) = %q, %v", st, ok)
	}
	if e.SetCalibrating("NOPE", t0) {
		t.Error("SetCalibrating(NOPE) = true")
	}
}

func TestNewEngine_errors(t *testing.T) {
	cases := []struct {
		name string
		s    SensorRules
		want string
	}{
		{"unknown_level", SensorRules{Sensor: "S", Rules: []Rule{{Level: "purple", Above: f(1)}}}, `level "purple"`},
		{"normal_is_not_a_rule_level", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelNormal, Above: f(1)}}}, `level "normal"`},
		{"no_condition", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelAlarm}}}, "exactly one of above, below, equals; got 0"},
		{"two_conditions", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelAlarm, Above: f(1), Below: f(0)}}}, "got 2"},
		{"clear_below_without_above", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelAlarm, Below: f(1), ClearBelow: f(0)}}}, "clear_below needs above"},
		{"clear_above_without_below", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelAlarm, Above: f(1), ClearAbove: f(2)}}}, "clear_above needs below"},
		{"clear_below_above_trigger", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelAlarm, Above: f(1), ClearBelow: f(1.2)}}}, "would chatter"},
		{"clear_above_below_trigger", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelAlarm, Below: f(20), ClearAbove: f(19)}}}, "would chatter"},
		{"bad_on_fault", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelAlarm, Above: f(1), OnFault: "ignore"}}}, `on_fault "ignore"`},
		{"negative_for", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelAlarm, Above: f(1), For: -time.Second}}}, "negative for"},
		{"empty_output", SensorRules{Sensor: "S", Rules: []Rule{{Level: LevelAlarm, Above: f(1), Outputs: []string{""}}}}, "empty output name"},
		{"no_id", SensorRules{Rules: []Rule{{Level: LevelAlarm, Above: f(1)}}}, "no id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewEngine([]SensorRules{c.s})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	// Every problem is reported, and a duplicate sensor is one.
	_, err := NewEngine([]SensorRules{
		{Sensor: "A", Rules: []Rule{{Level: "x", Above: f(1)}}},
		coalFace("B"), coalFace("B"),
	})
	if err == nil || !strings.Contains(err.Error(), `level "x"`) || !strings.Contains(err.Error(), "sensor B: rules given twice") {
		t.Fatalf("err = %v", err)
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Errorf("want 2 joined errors, got %v", err)
	}
}

// steadyEngine returns an engine and readings that alternate across the
// alarm and cut-off limits, so each Apply produces events and changes.
func steadyEngine(tb testing.TB) (*Engine, []reading.Reading) {
	e, err := NewEngine([]SensorRules{
		coalFace("CH4-101", "PWR-1"),
		{Sensor: "FAN-1-RUNNING", Rules: []Rule{{Level: LevelCutoff, Equals: b(false), Outputs: []string{"PWR-1"}}}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	rs := []reading.Reading{
		{Sensor: "FAN-1-RUNNING", Value: 1, Status: reading.StatusNormal},
		{Sensor: "CH4-101", Value: 0.5, Status: reading.StatusNormal},
		{Sensor: "CH4-101", Value: 1.6, Status: reading.StatusNormal},
		{Sensor: "CH4-101", Value: 0.4, Status: reading.StatusNormal},
		{Sensor: "CH4-101", Status: reading.StatusFault, Err: "timeout"},
	}
	return e, rs
}

func TestEngine_Apply_allocs(t *testing.T) {
	e, rs := steadyEngine(t)
	now := t0
	i := 0
	apply := func() {
		now = now.Add(time.Second)
		_, _ = e.Apply(rs[i%len(rs)], now)
		_ = e.Tick(now)
		i++
	}
	for range 50 { // warm up the reused buffers
		apply()
	}
	if n := testing.AllocsPerRun(200, apply); n != 0 {
		t.Errorf("Apply+Tick allocate %v per call", n)
	}
}

func BenchmarkEngine_Apply(b *testing.B) {
	e, rs := steadyEngine(b)
	now := t0
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		e.Apply(rs[i%len(rs)], now)
		i++
	}
}

// TestEngine_LimitNotMultipleOfResolution: a sensor whose step (0.03) does
// not divide the limits is compared as written: the value rounded to the
// sensor's step meets "≥ 1.0" first at 1.02 and "< 1.0" (restore) at 0.99;
// a below rule "≤ 19.5" on a 0.2-step sensor triggers at 19.4, not 19.6.
func TestEngine_LimitNotMultipleOfResolution(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	e, err := NewEngine([]SensorRules{
		{Sensor: "CH4", Type: "methane", Resolution: 0.03, Rules: []Rule{
			{Level: LevelCutoff, Above: f(1.0), ClearBelow: f(1.0), Outputs: []string{"K"}},
		}},
		{Sensor: "O2", Resolution: 0.2, Rules: []Rule{{Level: LevelAlarm, Below: f(19.5), ClearAbove: f(19.5)}}},
	})
	if err != nil {
		t.Fatalf("a limit that is not a multiple of the resolution was refused: %v", err)
	}
	rd := func(id string, v float64) reading.Reading {
		return reading.Reading{Sensor: id, Value: v, Status: reading.StatusNormal}
	}
	steps := []struct {
		id   string
		v    float64
		want reading.Status
	}{
		{"CH4", 0.99, reading.StatusNormal},
		{"CH4", 1.02, reading.StatusCutoff},
		{"CH4", 1.0200000001, reading.StatusCutoff},
		{"CH4", 1.02, reading.StatusCutoff},
		{"CH4", 0.99, reading.StatusNormal},
		{"CH4", 0.9900001, reading.StatusNormal},
		{"O2", 19.6, reading.StatusNormal},
		{"O2", 19.4, reading.StatusAlarm},
		{"O2", 19.6, reading.StatusNormal},
	}
	for i, s := range steps {
		if got, _ := e.Apply(rd(s.id, s.v), t0.Add(time.Duration(i)*time.Second)); got != s.want {
			t.Fatalf("step %d: %s=%v: status %s, want %s", i, s.id, s.v, got, s.want)
		}
	}
}
