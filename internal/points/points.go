// Package points is the hazard-point registry: for every monitored point
// what it is (type, regulator type code, point code, unit, valid range),
// where it is (location preset, place, coordinates), which limits are in
// force after presets and defaults (with the source of each), what it cuts
// and what it feeds, how it is polled; every output with what drives and
// controls it; every warning group. One Registry is built per config and
// serves both the retained …/points message of the MQTT contract and the
// regulator's point definitions (MT/T 1201.1-2023 CDDY), so the two can
// never disagree.
package points

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/decode"
	"github.com/hazmon/hazmon/internal/mtt"
	"github.com/hazmon/hazmon/internal/safety"
)

// Registry is the registry of one config.
type Registry struct {
	Sensors []contract.PointSensor
	Outputs []contract.PointOutput
	Groups  []contract.PointGroup
	// Hash identifies the registry's content (not its time or the
	// calibration state).
	Hash string
	// Reg identifies the sensor table (contract.RegHash): a compact (v2)
	// telemetry message names the table it indexes by it.
	Reg   string
	index *contract.TelemetryV2Index
	mine  string // the MT/T uplink's mine code, "" without one
}

// Build makes the registry of cfg (validated). codes is the regulator's
// code table (mtt.DefaultCodes, or an uplink's with its overrides).
func Build(cfg *config.Config, codes *mtt.Codes) Registry {
	r := Registry{}
	for _, u := range cfg.Uplinks {
		if u.Kind == config.UplinkMTT1201 && r.mine == "" {
			r.mine = u.MineCode
		}
	}
	cuts := map[string][]string{} // sensor → outputs its rules cut
	controls := map[string][]string{}
	for _, s := range cfg.Sensors {
		rs, _ := config.EffectiveRules(s)
		for _, rl := range rs {
			for _, o := range rl.Outputs {
				if !slices.Contains(cuts[s.ID], o) {
					cuts[s.ID] = append(cuts[s.ID], o)
					controls[o] = append(controls[o], s.ID)
				}
			}
		}
	}
	feedOf := map[string][]string{}
	for _, o := range cfg.Outputs {
		if o.Feed != "" {
			feedOf[o.Feed] = append(feedOf[o.Feed], o.Name)
		}
	}
	srs := map[string]safety.SensorRules{}
	for _, sr := range cfg.SensorRules() {
		srs[sr.Sensor] = sr
	}
	seq := map[string]int{} // per kind and type code, for point codes
	for i, s := range cfg.Sensors {
		p := contract.PointSensor{ID: s.ID, Index: i, Type: s.Type, Unit: s.Unit, Location: s.Location, Place: s.Place,
			X: s.X, Y: s.Y, Z: s.Z, Cuts: nonNil(cuts[s.ID]), FeedOf: nonNil(feedOf[s.ID]),
			IntervalS: interval(s).Seconds(), FaultAfter: s.FaultAfterOrDefault(), Bus: s.Bus}
		if s.GPIO != nil {
			p.Bus = ""
		}
		if len(s.Range) == 2 {
			p.Range = []float64{s.Range[0], s.Range[1]}
		}
		p.TypeCode, _ = codes.SensorType(s.Type, s.TypeCode)
		kind := mtt.KindAnalog
		if s.Format == "bool" {
			kind = mtt.KindSwitch
		}
		p.Kind = string(kind)
		p.PointCode = s.PointCode
		if p.PointCode == "" {
			k := p.Kind + p.TypeCode
			seq[k]++
			if code, err := mtt.PointCode(r.mine, mtt.SystemSafety, kind, p.TypeCode, seq[k]); err == nil {
				p.PointCode = code
			} else {
				p.PointCode = cfg.Agent.Site + "." + s.ID
			}
		}
		sr := srs[s.ID]
		p.Resolution, p.Decimals = sr.Resolution, valueDecimals(s, sr.Resolution)
		p.StaleAfterS = sr.StaleAfter.Seconds()
		if !sr.CalibrationDue.IsZero() {
			p.CalibrationDueTS = sr.CalibrationDue.UnixMilli()
		}
		p.Limits = limits(s, sr)
		r.Sensors = append(r.Sensors, p)
	}
	for _, o := range cfg.Outputs {
		po := contract.PointOutput{Name: o.Name, ControlledBy: nonNil(controls[o.Name]), Feed: o.Feed, Heartbeat: o.Heartbeat != nil}
		switch {
		case o.GPIO != nil:
			po.Kind, po.At = "gpio", fmt.Sprintf("chip %s line %d", o.GPIO.Chip, o.GPIO.Line)
		case o.Modbus != nil:
			po.Kind, po.At = "modbus", fmt.Sprintf("bus %s slave %d coil %d", o.Modbus.Bus, o.Modbus.Slave, o.Modbus.Coil)
		}
		r.Outputs = append(r.Outputs, po)
	}
	for _, g := range cfg.WarningGroups {
		r.Groups = append(r.Groups, contract.PointGroup{Name: g.Name, Sensors: slices.Clone(g.Sensors)})
	}
	b, _ := json.Marshal(struct {
		S []contract.PointSensor
		O []contract.PointOutput
		G []contract.PointGroup
	}{r.Sensors, r.Outputs, r.Groups})
	r.Hash = contract.ConfigHash(b)[:16]
	r.Reg = contract.RegHash(r.Sensors)
	r.index = contract.NewTelemetryV2Index(r.Sensors)
	return r
}

// Index returns the sensor table compact (v2) telemetry indexes, with Reg.
func (r Registry) Index() *contract.TelemetryV2Index { return r.index }

// valueDecimals is the number of decimals a sensor's values are written
// with: an integer-format sensor's values are rounded to the decimals of
// its scale and offset (decode.Spec.Decimals), a bool's are 0 or 1; a
// float sensor's values have no fixed step, so the decimals of its
// resolution are taken (values finer than that travel as text in v2).
func valueDecimals(s config.Sensor, resolution float64) int {
	if s.Format != decode.FormatFloat32 && s.GPIO == nil {
		if sp, err := decode.FromSensor(s); err == nil {
			return sp.Decimals
		}
	}
	if s.GPIO != nil || !(resolution > 0) {
		return 0
	}
	for d := 0; d < 9; d++ {
		y := resolution * math.Pow10(d)
		if math.Abs(y-math.Round(y)) < 1e-9*math.Max(1, y) {
			return d
		}
	}
	return 9
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func interval(s config.Sensor) time.Duration {
	if iv := s.Interval.D(); iv > 0 {
		return iv
	}
	return time.Second
}

// limits lists the rules in force with their restore values and sources.
func limits(s config.Sensor, sr safety.SensorRules) []contract.PointLimit {
	rs, from := config.EffectiveRules(s)
	source := sourceText(s, from)
	out := []contract.PointLimit{}
	for _, rl := range rs {
		l := contract.PointLimit{Level: string(rl.Level), Outputs: nonNil(slices.Clone(rl.Outputs)),
			OnFault: sr.OnFault(rl), ForS: rl.For.Seconds(), Source: source}
		switch {
		case rl.Above != nil:
			l.Direction, l.Limit, l.Restore = safety.DirHigh, rl.Above, rl.Above
			if rl.ClearBelow != nil {
				l.Restore = rl.ClearBelow
			}
		case rl.Below != nil:
			l.Direction, l.Limit, l.Restore = safety.DirLow, rl.Below, rl.Below
			if rl.ClearAbove != nil {
				l.Restore = rl.ClearAbove
			}
		case rl.Equals != nil:
			v := 0.0
			if *rl.Equals {
				v = 1
			}
			l.Direction, l.Limit = safety.DirState, &v
		}
		out = append(out, l)
	}
	return out
}

// sourceText says where a sensor's limits come from, with the regulation
// for a preset or a default.
func sourceText(s config.Sensor, from string) string {
	switch from {
	case config.RulesFromLocation:
		conf := ""
		if rows, err := safety.MethaneTable(); err == nil {
			for _, row := range rows {
				if row.Location == s.Location {
					conf = " [" + row.Confidence + "] " + row.DescriptionZH
				}
			}
		}
		return "Coal Mine Safety Regulations (2016, amended 2022) Art. 498: " + s.Location + conf
	case config.RulesFromDefault:
		return "type default for " + s.Type + " (Coal Mine Safety Regulations limit, hazmon domain notes §2)"
	case config.RulesFromConfig:
		return "site config"
	}
	return ""
}

// Message is the registry as the retained …/points payload at now, with
// the sensors under calibration marked.
func (r Registry) Message(agent, site string, now time.Time, calibrating map[string]bool) contract.Points {
	m := contract.Points{V: contract.Version, Agent: agent, Site: site, TS: now.UnixMilli(), Hash: r.Hash, Reg: r.Reg,
		Sensors: slices.Clone(r.Sensors), Outputs: nonNilOutputs(r.Outputs), Groups: nonNilGroups(r.Groups)}
	if m.Sensors == nil {
		m.Sensors = []contract.PointSensor{}
	}
	for i := range m.Sensors {
		m.Sensors[i].Calibrating = calibrating[m.Sensors[i].ID]
	}
	return m
}

func nonNilOutputs(o []contract.PointOutput) []contract.PointOutput {
	if o == nil {
		return []contract.PointOutput{}
	}
	return o
}

func nonNilGroups(g []contract.PointGroup) []contract.PointGroup {
	if g == nil {
		return []contract.PointGroup{}
	}
	return g
}

// MTT returns the regulator's point definitions (CDDY) of the registry:
// the first alarm and cut-off rule of each direction fill the limits.
func (r Registry) MTT(codes *mtt.Codes) []mtt.Point {
	out := make([]mtt.Point, 0, len(r.Sensors))
	for _, s := range r.Sensors {
		p := mtt.Point{Code: s.PointCode, System: mtt.SystemSafety, Substation: s.Bus, TypeCode: s.TypeCode,
			TypeName: codes.TypeName(s.TypeCode), Kind: mtt.ValueKind(s.Kind), Unit: s.Unit, Place: s.Place,
			X: mtt.SomePtr(s.X), Y: mtt.SomePtr(s.Y), Z: mtt.SomePtr(s.Z)}
		if p.Place == "" {
			p.Place = s.Location
		}
		if len(s.Range) == 2 {
			p.RangeLow, p.RangeHigh = mtt.Some(s.Range[0]), mtt.Some(s.Range[1])
		}
		if p.Kind == mtt.KindSwitch {
			p.OnText, p.OffText = "1", "0"
		}
		for _, l := range s.Limits {
			set := func(limit, restore *mtt.Num) {
				if !limit.OK {
					*limit, *restore = mtt.SomePtr(l.Limit), mtt.SomePtr(l.Restore)
				}
			}
			switch {
			case l.Level == string(safety.LevelAlarm) && l.Direction == safety.DirHigh:
				set(&p.UpperAlarm, &p.UpperAlarmClear)
			case l.Level == string(safety.LevelAlarm) && l.Direction == safety.DirLow:
				set(&p.LowerAlarm, &p.LowerAlarmClear)
			case l.Level == string(safety.LevelCutoff) && l.Direction == safety.DirHigh:
				set(&p.UpperCutoff, &p.UpperRestore)
			case l.Level == string(safety.LevelCutoff) && l.Direction == safety.DirLow:
				set(&p.LowerCutoff, &p.LowerRestore)
			}
		}
		out = append(out, p)
	}
	return out
}

// Point returns the registry's entry of sensor id.
func (r Registry) Point(id string) (contract.PointSensor, bool) {
	for _, s := range r.Sensors {
		if s.ID == id {
			return s, true
		}
	}
	return contract.PointSensor{}, false
}
