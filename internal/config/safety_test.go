package config

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

const safetyYAML = `agent: {id: gw-01, site: site-0001}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
buses:
  - {name: plc-1, protocol: tcp, address: "127.0.0.1:502"}
outputs:
  - {name: breaker-3, modbus: {bus: plc-1, slave: 1, coil: 100}, feed: FEED-3}
  - {name: relay-1, gpio: {chip: gpiochip0, line: 17}}
sensors:
  - {id: CH4-101, type: methane, bus: plc-1, slave: 1, table: holding, address: 0, scale: 0.01, unit: "%CH4", range: [0, 4],
     location: coal_face, cut_outputs: [breaker-3]}
  - id: CH4-102
    type: methane
    bus: plc-1
    slave: 1
    table: holding
    address: 1
    scale: 0.01
    unit: "%CH4"
    range: [0, 4]
    location: heading_face
    rules:
      - {level: alarm, above: 1.0, clear_below: 1.0}
      - {level: cutoff, above: 1.5, clear_below: 1.0, outputs: [breaker-3, relay-1]}
  - {id: CO-101, type: co, bus: plc-1, slave: 1, table: holding, address: 2, unit: ppm, range: [0, 1000]}
  - {id: H2S-1, type: h2s, bus: plc-1, slave: 1, table: holding, address: 3, unit: ppm, range: [0, 100]}
  - {id: LEL-1, type: lel, bus: plc-1, slave: 1, table: holding, address: 4, unit: "%LEL", range: [0, 100],
     rules: [{level: alarm, above: 25}, {level: alarm2, above: 50}]}
  - {id: FAN-1, type: digital, bus: plc-1, slave: 1, table: discrete, address: 0,
     rules: [{level: cutoff, equals: false, outputs: [breaker-3]}]}
  - {id: FEED-3, type: digital, gpio: {chip: gpiochip0, line: 5, pull: up}}
`

func TestSafety_Valid(t *testing.T) {
	l, err := Parse("s.yaml", []byte(safetyYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %v", l.Warnings)
	}
	srs := l.Config.SensorRules()
	if len(srs) != 7 {
		t.Fatalf("got %d sensor rules", len(srs))
	}
	byID := map[string]safety.SensorRules{}
	for _, s := range srs {
		byID[s.Sensor] = s
	}
	ch4 := byID["CH4-101"]
	if len(ch4.Rules) != 2 || *ch4.Rules[1].Above != 1.5 || *ch4.Rules[1].ClearBelow != 1.0 || ch4.Rules[1].Outputs[0] != "breaker-3" {
		t.Errorf("coal_face preset = %+v", ch4.Rules)
	}
	if ch4.Resolution != 0.01 {
		t.Errorf("CH4 resolution = %g", ch4.Resolution)
	}
	if co := byID["CO-101"]; len(co.Rules) != 1 || *co.Rules[0].Above != 24 {
		t.Errorf("CO default = %+v", co.Rules)
	}
	// 6.6 ppm on a 1-ppm sensor: the limit is kept as written and the
	// sensor's own step is used, so 7 ppm alarms and 6 does not.
	if h := byID["H2S-1"]; h.Resolution != 1 {
		t.Errorf("H2S resolution = %g", h.Resolution)
	}
	e, err := safety.NewEngine(srs)
	if err != nil {
		t.Fatalf("engine rejects converted rules: %v", err)
	}
	for v, want := range map[float64]reading.Status{6: reading.StatusNormal, 7: reading.StatusAlarm} {
		if st, _ := e.Apply(reading.Reading{Sensor: "H2S-1", Value: v, Status: reading.StatusNormal}, time.Unix(0, 0)); st != want {
			t.Errorf("H2S %v ppm: %s, want %s", v, st, want)
		}
	}
	if got := l.Config.Outputs[0].FeedTimeout.D().String(); got != "2s" {
		t.Errorf("feed_timeout default = %s", got)
	}
}

func TestSafety_Errors(t *testing.T) {
	cases := []struct {
		name, old, new string
		want           string
	}{
		{"methane cut-off looser than Art. 498", "{level: cutoff, above: 1.5, clear_below: 1.0", "{level: cutoff, above: 1.6, clear_below: 1.0",
			"sensors[1].rules[1].above: cut-off at 1.6 %CH4 is looser than the heading_face limit 1.5"},
		{"methane restore looser", "{level: cutoff, above: 1.5, clear_below: 1.0", "{level: cutoff, above: 1.5, clear_below: 1.2",
			"sensors[1].rules[1].clear_below: restore at 1.2 %CH4 is looser"},
		{"methane without cutoff", "      - {level: cutoff, above: 1.5, clear_below: 1.0, outputs: [breaker-3, relay-1]}\n", "",
			"sensors[1].rules: no cutoff rule"},
		{"LEL level 1 looser than 25", "{level: alarm, above: 25}", "{level: alarm, above: 30}",
			"sensors[4].rules[0].above: level-1 alarm at 30 %LEL is looser than 25 %LEL (GB/T 50493-2019)"},
		{"LEL level 2 looser than 50", "{level: alarm2, above: 50}", "{level: alarm2, above: 60}",
			"level-2 alarm at 60 %LEL"},
		{"unknown output", "outputs: [breaker-3, relay-1]", "outputs: [breaker-9]",
			`sensors[1].rules[1].outputs[0]: "breaker-9" is not an output`},
		{"unknown location", "location: coal_face", "location: kitchen",
			`sensors[0].location: "kitchen" is not a location`},
		{"equals on an analog sensor", "{level: alarm, above: 1.0, clear_below: 1.0}", "{level: alarm, equals: true}",
			"sensors[1].rules[0].equals: only for a digital"},
		{"clear above the trigger", "{level: alarm, above: 1.0, clear_below: 1.0}", "{level: alarm, above: 1.0, clear_below: 1.2}",
			"could never clear"},
		{"bad level", "{level: alarm, above: 25}", "{level: panic, above: 25}", `sensors[4].rules[0].level: "panic"`},
		{"output with gpio and modbus", "{name: relay-1, gpio: {chip: gpiochip0, line: 17}}", "{name: relay-1, gpio: {chip: gpiochip0, line: 17}, modbus: {bus: plc-1, slave: 1, coil: 1}}",
			"outputs[1]: set exactly one of gpio or modbus"},
		{"feed not digital", "feed: FEED-3", "feed: CO-101", `outputs[0].feed: sensor "CO-101" is not digital`},
		{"gpio sensor not digital", "{id: FEED-3, type: digital, gpio:", "{id: FEED-3, type: co, gpio:", `sensors[6].type: a gpio input is type digital`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(safetyYAML, tc.old, tc.new, 1)
			if y == safetyYAML {
				t.Fatalf("edit %q did not apply", tc.old)
			}
			_, err := Parse("s.yaml", []byte(y))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestSafety_OverrideWarns(t *testing.T) {
	y := strings.Replace(safetyYAML, "{level: alarm, above: 25}", "{level: alarm, above: 30}", 1)
	y = strings.Replace(y, `unit: "%LEL", range: [0, 100],`, `unit: "%LEL", range: [0, 100], override_regulation: true,`, 1)
	l, err := Parse("s.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0].Error(), "s.yaml:27: sensors[4].rules[0].above: level-1 alarm at 30") {
		t.Fatalf("warnings = %v", l.Warnings)
	}
}

func TestSafety_UnusedOutputWarns(t *testing.T) {
	y := strings.Replace(safetyYAML, "outputs: [breaker-3, relay-1]", "outputs: [breaker-3]", 1)
	l, err := Parse("s.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0].Error(), `s.yaml:7: outputs[1].name: no rule names "relay-1"`) {
		t.Fatalf("warnings = %v", l.Warnings)
	}
}

// cut_outputs on a location whose preset has no cut-off (alarm only)
// would never cut anything: validate says so (a warning, so an upgraded
// agent still starts and monitors).
func TestSafety_CutOutputsOnAnAlarmOnlyLocationWarns(t *testing.T) {
	y := strings.Replace(safetyYAML, "location: coal_face, cut_outputs", "location: main_return, cut_outputs", 1)
	l, err := Parse("s.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, w := range l.Warnings {
		found = found || strings.Contains(w.Error(), "sensors[0].cut_outputs: the main_return preset has no cut-off (alarm only, Art. 498), so this sensor never cuts these outputs")
	}
	if !found {
		t.Fatalf("warnings = %v", l.Warnings)
	}
}

func TestSafety_WarningGroups(t *testing.T) {
	base := `agent: {id: gw-01, site: tsf-1}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
buses: [{name: b, protocol: tcp, address: "127.0.0.1:502"}]
sensors:
  - {id: LVL, type: water_level, bus: b, slave: 1, table: holding, address: 0, scale: 0.01, unit: m, range: [0, 100],
     rules: [{level: blue, above: 10}, {level: yellow, above: 11}]}
  - {id: PHR, type: saturation_line, bus: b, slave: 1, table: holding, address: 1, scale: 0.01, unit: m, range: [0, 40],
     rules: [{level: blue, below: 12}]}
  - {id: RAIN, type: rain, bus: b, slave: 1, table: holding, address: 2, unit: mm, range: [0, 500]}
warning_groups:
  - {name: POND-1, sensors: [LVL, PHR]}
`
	if _, err := Parse("g.yaml", []byte(base)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{"sensors: [LVL, PHR]", "sensors: [LVL, NOPE]", `warning_groups[0].sensors[1]: "NOPE" is not a sensor`},
		{"sensors: [LVL, PHR]", "sensors: [LVL]", "warning_groups[0].sensors: a warning group combines at least 2 sensors"},
		{"name: POND-1", "name: LVL", `warning_groups[0].name: "LVL" is a sensor id`},
	} {
		_, err := Parse("g.yaml", []byte(strings.Replace(base, tc.old, tc.new, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: want %q, got %v", tc.old, tc.new, tc.want, err)
		}
	}
	l, err := Parse("g.yaml", []byte(strings.Replace(base, "sensors: [LVL, PHR]", "sensors: [LVL, PHR, RAIN]", 1)))
	if err != nil || len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0].Error(), `"RAIN" has no blue/yellow/orange/red rule`) {
		t.Fatalf("RAIN without colour rules: %v %v", err, l.Warnings)
	}
}

// TestSafety_CutoffDelay: an on-delay on a cut-off defeats it. A methane
// cut-off must act at once; any other cut-off within 2 s (GB 50581-2010).
func TestSafety_CutoffDelay(t *testing.T) {
	for _, tc := range []struct{ old, new, want string }{
		{"{level: cutoff, above: 1.5, clear_below: 1.0, outputs", "{level: cutoff, above: 1.5, clear_below: 1.0, for: 1h, outputs",
			"sensors[1].rules[1].for: a methane cut-off must act at once"},
		{"{level: cutoff, above: 1.5, clear_below: 1.0, outputs", "{level: cutoff, above: 1.5, clear_below: 1.0, for: 500ms, outputs",
			"sensors[1].rules[1].for: a methane cut-off must act at once"},
		{"{level: cutoff, equals: false, outputs: [breaker-3]}", "{level: cutoff, equals: false, for: 3s, outputs: [breaker-3]}",
			"sensors[5].rules[0].for: 3s delays the cut-off beyond the 2 s"},
	} {
		_, err := Parse("s.yaml", []byte(strings.Replace(safetyYAML, tc.old, tc.new, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want %q, got %v", tc.new, tc.want, err)
		}
	}
	// A fan contact may be debounced within the 2 s.
	if _, err := Parse("s.yaml", []byte(strings.Replace(safetyYAML, "{level: cutoff, equals: false, outputs", "{level: cutoff, equals: false, for: 1s, outputs", 1))); err != nil {
		t.Fatal(err)
	}
	// Methane without rules, and a short fault lockout, are warned about.
	y := strings.Replace(safetyYAML, "location: coal_face, cut_outputs: [breaker-3]}", "fault_unlock_after: 1ms, location: coal_face, cut_outputs: [breaker-3]}", 1)
	y = strings.Replace(y, "    location: heading_face\n    rules:\n      - {level: alarm, above: 1.0, clear_below: 1.0}\n      - {level: cutoff, above: 1.5, clear_below: 1.0, outputs: [breaker-3, relay-1]}\n", "", 1)
	l, err := Parse("s.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var ws []string
	for _, w := range l.Warnings {
		ws = append(ws, w.Error())
	}
	all := strings.Join(ws, "\n")
	for _, want := range []string{"sensors[0].fault_unlock_after: 1ms is shorter than the default 10s", "sensors[1].location: a methane sensor with no location and no rules only reports"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}

// TestConfig_Effective: config show prints the limits in force — a
// location preset and a type default expanded, on_fault and the fault
// lockout resolved — not an empty rules list.
func TestConfig_Effective(t *testing.T) {
	l, err := Parse("s.yaml", []byte(safetyYAML))
	if err != nil {
		t.Fatal(err)
	}
	e := l.Config.Effective()
	ch4 := e.Sensors[0]
	if len(ch4.Rules) != 2 || ch4.Rules[1].Level != "cutoff" || *ch4.Rules[1].Above != 1.5 || *ch4.Rules[1].ClearBelow != 1.0 ||
		ch4.Rules[1].OnFault != "cut" || ch4.Rules[1].Outputs[0] != "breaker-3" || ch4.CutOutputs != nil {
		t.Fatalf("coal_face preset: %+v", ch4.Rules)
	}
	if ch4.FaultUnlockAfter.D().String() != "10s" || ch4.Resolution != 0.01 {
		t.Fatalf("CH4 lockout %s resolution %g", ch4.FaultUnlockAfter, ch4.Resolution)
	}
	if co := e.Sensors[2]; len(co.Rules) != 1 || *co.Rules[0].Above != 24 || co.Rules[0].OnFault != "hold" {
		t.Fatalf("CO default: %+v", co.Rules)
	}
	if len(l.Config.Sensors[0].Rules) != 0 {
		t.Fatal("Effective changed the running config")
	}
	if *e.Buses[0].MaxGap != DefaultMaxGap || e.MQTT.WindowBytes != 64<<10 {
		t.Fatalf("defaults: max_gap %d window_bytes %d", *e.Buses[0].MaxGap, e.MQTT.WindowBytes)
	}
}

// TestConfig_EffectiveRoundTrip: what config show prints is itself a valid
// config that runs the same rules.
func TestConfig_EffectiveRoundTrip(t *testing.T) {
	l, err := Parse("s.yaml", []byte(safetyYAML))
	if err != nil {
		t.Fatal(err)
	}
	e := l.Config.Effective()
	out, err := yaml.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := Parse("shown.yaml", out)
	if err != nil {
		t.Fatalf("config show output does not load: %v\n%s", err, out)
	}
	e2 := l2.Config.Effective()
	out2, err := yaml.Marshal(&e2)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Fatalf("effective config changes on a round trip:\n%s\n----\n%s", out, out2)
	}
}

func TestSafety_OneRulePerLevelAndFeed(t *testing.T) {
	y := strings.Replace(safetyYAML, "      - {level: cutoff, above: 1.5, clear_below: 1.0, outputs: [breaker-3, relay-1]}\n",
		"      - {level: cutoff, above: 1.5, clear_below: 1.0, outputs: [breaker-3, relay-1]}\n      - {level: cutoff, above: 2.0, clear_below: 1.0, outputs: [relay-1]}\n", 1)
	if _, err := Parse("s.yaml", []byte(y)); err == nil || !strings.Contains(err.Error(), "sensors[1].rules[2].level: cutoff is already rules[1]: one cutoff rule per direction") {
		t.Fatalf("two cutoff rules on one sensor: %v", err)
	}
	// A high and a low alarm on one sensor are fine unless they overlap.
	lvl := strings.Replace(safetyYAML, "      - {level: alarm, above: 1.0, clear_below: 1.0}\n", "      - {level: alarm, above: 1.0, clear_below: 1.0}\n      - {level: alarm, below: 0.1}\n", 1)
	if _, err := Parse("s.yaml", []byte(lvl)); err != nil {
		t.Fatalf("high and low alarm: %v", err)
	}
	lvl = strings.Replace(lvl, "{level: alarm, below: 0.1}", "{level: alarm, below: 1.2, clear_above: 1.2}", 1)
	if _, err := Parse("s.yaml", []byte(lvl)); err == nil || !strings.Contains(err.Error(), "the alarm limits overlap (above 1, below 1.2)") {
		t.Fatalf("overlapping alarms: %v", err)
	}
	y = strings.Replace(safetyYAML, "{name: relay-1, gpio: {chip: gpiochip0, line: 17}}", "{name: relay-1, gpio: {chip: gpiochip0, line: 17}, feed: FEED-3}", 1)
	if _, err := Parse("s.yaml", []byte(y)); err == nil || !strings.Contains(err.Error(), `outputs[1].feed: "FEED-3" is already the feed of outputs[0]`) {
		t.Fatalf("shared feed: %v", err)
	}
}

// TestSafety_PresetOnCoarseScale: the coal-face preset (1.0 / 1.5 / 1.0
// %CH4) is accepted for a sensor whose scale (0.03) divides none of its
// limits, and the engine meets the cut-off at the first value the sensor
// can show at or above 1.5 (1.5 itself: 50 counts).
func TestSafety_PresetOnCoarseScale(t *testing.T) {
	const doc = `agent: {id: gw-01, site: site-0001}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
buses:
  - {name: plc-1, protocol: tcp, address: "127.0.0.1:502"}
outputs:
  - {name: breaker-3, gpio: {chip: gpiochip0, line: 17}}
sensors:
  - {id: CH4-1, type: methane, bus: plc-1, slave: 1, table: holding, address: 0, scale: 0.03,
     unit: "%CH4", range: [0, 4], location: coal_face, cut_outputs: [breaker-3]}
`
	l, err := Parse("coarse.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("coal-face preset refused for a 0.03-step sensor: %v", err)
	}
	e, err := safety.NewEngine(l.Config.SensorRules())
	if err != nil {
		t.Fatal(err)
	}
	rd := func(counts int) reading.Reading {
		return reading.Reading{Sensor: "CH4-1", Value: float64(counts) * 0.03, Status: reading.StatusNormal}
	}
	for i, c := range []struct {
		counts int
		want   reading.Status
	}{{33, reading.StatusNormal}, {34, reading.StatusAlarm}, {49, reading.StatusAlarm}, {50, reading.StatusCutoff}, {34, reading.StatusCutoff}, {33, reading.StatusNormal}} {
		if st, _ := e.Apply(rd(c.counts), time.Unix(int64(i), 0)); st != c.want {
			t.Fatalf("%d counts (%.2f %%CH4): %s, want %s", c.counts, float64(c.counts)*0.03, st, c.want)
		}
	}
}
