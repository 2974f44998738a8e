package safety

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// methaneRows are the numbers of the Coal Mine Safety Regulations
// (2016/2022) Art. 498 table, copied here independently of methane.csv so a
// mistaken edit of the embedded table fails the test. cutoff < 0 = alarm only.
var methaneRows = []struct {
	location               string
	alarm, cutoff, restore float64
	confidence             string
}{
	{"coal_face_return_corner", 1.0, 1.5, 1.0, "S"},
	{"coal_face", 1.0, 1.5, 1.0, "S"},
	{"coal_face_outburst", 1.0, 1.5, 1.0, "S"},
	{"coal_face_return", 1.0, 1.0, 1.0, "S"},
	{"coal_face_intake", 0.5, 0.5, 0.5, "S"},
	{"series_face_intake", 0.5, 0.5, 0.5, "S"},
	{"drainage_roadway", 2.5, 2.5, 2.5, "S"},
	{"drainage_mixed_return", 1.0, 1.0, 1.0, "S"},
	{"shearer", 1.0, 1.5, 1.0, "S"},
	{"heading_face", 1.0, 1.5, 1.0, "S"},
	{"heading_return", 1.0, 1.0, 1.0, "S"},
	{"heading_machine", 1.0, 1.5, 1.0, "U"},
	{"district_return", 1.0, 1.0, 1.0, "U"},
	{"main_return", 0.75, -1, -1, "U"},
	{"loco_loading_point", 0.5, 0.5, 0.5, "S"},
	{"battery_loco", 0.5, 0.7, 0.5, "U"},
	{"diesel_vehicle", 0.5, 0.7, 0.5, "U"},
	{"coal_bunker", 1.5, 1.5, 1.5, "U"},
	{"drainage_pump_house", 0.5, -1, -1, "U"},
}

func TestMethaneTable(t *testing.T) {
	rows, err := MethaneTable()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(methaneRows) {
		t.Fatalf("%d rows, want %d", len(rows), len(methaneRows))
	}
	for i, want := range methaneRows {
		got := rows[i]
		if got.Location != want.location || got.Alarm != want.alarm || got.Confidence != want.confidence ||
			got.HasCutoff != (want.cutoff >= 0) || (got.HasCutoff && (got.Cutoff != want.cutoff || got.Restore != want.restore)) {
			t.Errorf("row %d = %+v, want %+v", i, got, want)
		}
		if got.DescriptionZH == "" || got.DescriptionEN == "" || got.CutoffArea == "" {
			t.Errorf("row %s lacks a description or cut-off area: %+v", got.Location, got)
		}
	}
}

// TestPreset runs every row of the methane table through the engine at the
// row's own numbers: one step below the alarm, at the alarm, one step below
// the cut-off, at the cut-off, at the restore value (no restore), one step
// below it (restore).
func TestPreset(t *testing.T) {
	const step = MethaneResolution
	for _, row := range methaneRows {
		t.Run(row.location, func(t *testing.T) {
			rules, ok := Preset(row.location)
			if !ok {
				t.Fatal("no preset")
			}
			hasCut := row.cutoff >= 0
			if hasCut {
				if len(rules) != 2 || rules[1].Level != LevelCutoff || rules[1].OnFault != OnFaultCut {
					t.Fatalf("rules %+v, want alarm and cutoff with on_fault cut", rules)
				}
				rules[1].Outputs = []string{"PWR"}
			} else if len(rules) != 1 || rules[0].Level != LevelAlarm {
				t.Fatalf("rules %+v, want one alarm", rules)
			}
			e := mustEngine(t, SensorRules{Sensor: "CH4", Type: "methane", Resolution: MethaneResolution, Rules: rules})
			now := t0
			apply := func(v float64) reading.Status {
				now = now.Add(time.Second)
				st, _ := e.Apply(reading.Reading{Sensor: "CH4", Value: v, Status: reading.StatusNormal}, now)
				return st
			}
			expect := func(v float64, status reading.Status, cut bool) {
				t.Helper()
				if st := apply(v); st != status {
					t.Errorf("%.2f: status %q, want %q", v, st, status)
				}
				if c, known := e.Cut("PWR"); hasCut && (!known || c != cut) {
					t.Errorf("%.2f: PWR cut=%v, want %v", v, c, cut)
				}
			}
			below := func(x float64) float64 { return math.Round((x-step)*100) / 100 }
			expect(below(row.alarm), reading.StatusNormal, false)
			atAlarm := reading.StatusAlarm
			if hasCut && row.cutoff == row.alarm {
				atAlarm = reading.StatusCutoff
			}
			expect(row.alarm, atAlarm, hasCut && row.cutoff == row.alarm)
			if !hasCut {
				expect(below(row.alarm), reading.StatusNormal, false)
				return
			}
			if row.cutoff > row.alarm {
				expect(below(row.cutoff), reading.StatusAlarm, false)
			}
			expect(row.cutoff, reading.StatusCutoff, true)
			expect(row.restore, reading.StatusCutoff, true) // equal to restore: not restored
			expect(below(row.restore), reading.StatusNormal, false)
			// A fault cuts at once and keeps the power off until the sensor has
			// read validly for DefaultFaultUnlockAfter.
			now = now.Add(time.Second)
			if st, _ := e.Apply(reading.Reading{Sensor: "CH4", Status: reading.StatusFault, Err: "line break"}, now); st != reading.StatusFault {
				t.Errorf("fault: status %q", st)
			}
			if c, _ := e.Cut("PWR"); !c {
				t.Error("fault did not cut PWR")
			}
			start := now.Add(time.Second)
			now = start.Add(-time.Second)
			for now.Add(time.Second).Sub(start) < DefaultFaultUnlockAfter { // valid from start to start+9 s
				expect(0, reading.StatusNormal, true)
			}
			expect(0, reading.StatusNormal, false)
		})
	}
	if _, ok := Preset("nowhere"); ok {
		t.Error(`Preset("nowhere") ok`)
	}
}

func TestDefaults(t *testing.T) {
	cases := []struct {
		typ, unit  string
		resolution float64
		values     []float64
		want       []reading.Status
	}{
		// CO: alarm ≥ 24 ppm.
		{"co", "ppm", 1, []float64{23, 24, 23}, []reading.Status{"normal", "alarm", "normal"}},
		// O2: alarm at ≤ 20 %vol (below-rule), cleared strictly above 20.
		{"o2", "%vol", 0.1, []float64{20.1, 20.0, 20.0, 19.4, 20.1}, []reading.Status{"normal", "alarm", "alarm", "alarm", "normal"}},
		// H2S: alarm ≥ 6.6 ppm.
		{"h2s", "ppm", 0.1, []float64{6.5, 6.5999999, 6.5}, []reading.Status{"normal", "alarm", "normal"}},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			rules, unit, ok := Defaults(c.typ)
			if !ok || unit != c.unit {
				t.Fatalf("Defaults(%q) = %v, %q, %v", c.typ, rules, unit, ok)
			}
			e := mustEngine(t, SensorRules{Sensor: "G", Type: c.typ, Resolution: c.resolution, Rules: rules})
			for i, v := range c.values {
				st, _ := e.Apply(reading.Reading{Sensor: "G", Value: v, Status: reading.StatusNormal}, t0.Add(time.Duration(i)*time.Second))
				if st != c.want[i] {
					t.Errorf("%v %s: status %q, want %q", v, unit, st, c.want[i])
				}
			}
		})
	}
	for _, typ := range []string{"methane", "lel", "water_level", ""} {
		if _, _, ok := Defaults(typ); ok {
			t.Errorf("Defaults(%q) ok, want none", typ)
		}
	}
}

func ExamplePreset() {
	rules, _ := Preset("coal_face")
	for _, r := range rules {
		fmt.Printf("%s at >= %.2f, restore below %.2f\n", r.Level, *r.Above, *r.ClearBelow)
	}
	// Output:
	// alarm at >= 1.00, restore below 1.00
	// cutoff at >= 1.50, restore below 1.00
}

func TestSensorResolution(t *testing.T) {
	cases := []struct {
		format string
		scale  float64
		typ    string
		want   float64
	}{
		{"uint16", 0.01, "methane", 0.01},
		{"int16", -0.1, "temperature", 0.1},
		{"int32", 1, "co", 1},
		{"bool", 1, "digital", 1},
		{"float32", 1, "methane", 0.01},
		{"float32", 1, "pressure", 0},
	}
	for _, c := range cases {
		if got := SensorResolution(c.format, c.scale, c.typ); got != c.want {
			t.Errorf("SensorResolution(%s, %g, %s) = %g, want %g", c.format, c.scale, c.typ, got, c.want)
		}
	}
}
