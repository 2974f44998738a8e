package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/hazmon/hazmon/internal/safety"
)

// Regulation limits for combustible and toxic gas detectors on
// hazardous-chemical sites (GB/T 50493-2019, domain notes §6, R): the
// level-1 alarm of a combustible gas at most 25 % LEL, the level-2 alarm at
// most 50 % LEL. A looser hand-written rule is a validation error unless the
// sensor says override_regulation: true.
const (
	LELAlarm1Max = 25.0 // % LEL
	LELAlarm2Max = 50.0 // % LEL
)

// MaxCutoffDelay is the longest on-delay (for) a cut-off rule may have
// (safety.MaxCutoffDelay: GB 50581-2010 §3.1.4, R). A methane cut-off
// takes none.
const MaxCutoffDelay = safety.MaxCutoffDelay

// DefaultFeedTimeout is outputs[].feed_timeout's default
// (safety.DefaultFeedTimeout).
const DefaultFeedTimeout = safety.DefaultFeedTimeout

// Heartbeat bounds (outputs[].heartbeat.every): the default toggles once a
// second; a PLC communications watchdog is usually set to a few seconds.
const (
	DefaultHeartbeatEvery = time.Second
	MinHeartbeatEvery     = 100 * time.Millisecond
	MaxHeartbeatEvery     = time.Minute
)

var ruleLevels = []string{"alarm", "alarm2", "cutoff", "blue", "yellow", "orange", "red"}

// SensorRules converts the sensors' safety settings to the rule engine's
// form: hand-written rules, or a methane location preset (cut-off cutting
// cut_outputs), or the type defaults for co, o2 and h2s. Sensors with no
// rules at all are still listed, so their faults raise fault events.
// Each carries its stale_after (configured or default, see staleness), so
// the engine's Tick faults a sensor whose readings stopped.
// The config must have passed validation.
func (c *Config) SensorRules() []safety.SensorRules {
	out := make([]safety.SensorRules, 0, len(c.Sensors))
	for _, s := range c.Sensors {
		rs, _ := effectiveRules(s)
		out = append(out, safety.SensorRules{
			Sensor:           s.ID,
			Type:             s.Type,
			Resolution:       resolution(s, rs),
			FaultUnlockAfter: s.FaultUnlockAfter.D(),
			StaleAfter:       c.staleness(s).value,
			CalibrationDue:   s.CalibrationDueTime(),
			Rules:            rs,
		})
	}
	return out
}

// SafetySpec is what the safety core enforces for this config: the rules
// of every sensor (SensorRules), each output with its feed and heartbeat,
// and the warning groups. The config must have passed validation.
func (c *Config) SafetySpec() safety.Spec {
	sp := safety.Spec{Sensors: c.SensorRules()}
	for _, o := range c.Outputs {
		os := safety.OutputSpec{Name: o.Name, Feed: o.Feed, FeedTimeout: o.FeedTimeout.D()}
		if o.Heartbeat != nil {
			os.Heartbeat = o.Heartbeat.Every.D()
		}
		sp.Outputs = append(sp.Outputs, os)
	}
	for _, g := range c.WarningGroups {
		sp.Groups = append(sp.Groups, safety.GroupSpec{Name: g.Name, Sensors: slices.Clone(g.Sensors)})
	}
	return sp
}

// Effective returns a copy of c as the agent runs it, for display (hazmon
// config show): each sensor's rules expanded from its location preset or
// type default, with on_fault, fault_unlock_after, stale_after and
// resolution resolved, and the scale filled in. cut_outputs is folded into the cut-off rule.
func (c *Config) Effective() Config {
	e := *c
	e.Sensors = make([]Sensor, len(c.Sensors))
	for i, s := range c.Sensors {
		rs, _ := effectiveRules(s)
		sr := safety.SensorRules{Sensor: s.ID, Type: s.Type}
		s.Rules = nil
		for _, r := range rs {
			cr := Rule{Level: string(r.Level), Above: r.Above, Below: r.Below, Equals: r.Equals,
				ClearBelow: r.ClearBelow, ClearAbove: r.ClearAbove, For: Duration(r.For),
				Outputs: slices.Clone(r.Outputs), OnFault: sr.OnFault(r)}
			if cr.Above != nil && cr.ClearBelow == nil {
				cr.ClearBelow = cr.Above
			}
			if cr.Below != nil && cr.ClearAbove == nil {
				cr.ClearAbove = cr.Below
			}
			s.Rules = append(s.Rules, cr)
		}
		s.CutOutputs = nil
		s.Resolution = resolution(s, rs)
		if s.FaultUnlockAfter == 0 {
			s.FaultUnlockAfter = Duration(safety.DefaultFaultUnlockAfter)
		}
		s.StaleAfter = Duration(c.staleness(s).value)
		if s.Scale == nil && s.Format != "bool" {
			one := 1.0
			s.Scale = &one
		}
		e.Sensors[i] = s
	}
	return e
}

// Where a sensor's rules come from (EffectiveRules).
const (
	RulesFromConfig   = "config"   // hand-written in the config
	RulesFromLocation = "location" // the methane table's row of its location (Art. 498)
	RulesFromDefault  = "default"  // the type default (co, o2, h2s)
)

// EffectiveRules returns the rules sensor s runs with (after presets and
// type defaults) and where they come from: RulesFromConfig,
// RulesFromLocation, RulesFromDefault, or "" for none.
func EffectiveRules(s Sensor) ([]safety.Rule, string) { return effectiveRules(s) }

// effectiveRules returns the rules a sensor runs with and where they came
// from ("config", "location", "default" or "").
func effectiveRules(s Sensor) ([]safety.Rule, string) {
	if len(s.Rules) > 0 {
		rs := make([]safety.Rule, 0, len(s.Rules))
		for _, r := range s.Rules {
			rs = append(rs, safety.Rule{
				Level: safety.Level(r.Level), Above: r.Above, Below: r.Below, Equals: r.Equals,
				ClearBelow: r.ClearBelow, ClearAbove: r.ClearAbove, For: r.For.D(),
				Outputs: slices.Clone(r.Outputs), OnFault: r.OnFault,
			})
		}
		return rs, "config"
	}
	if s.Location != "" {
		rs, ok := safety.Preset(s.Location)
		if !ok {
			return nil, ""
		}
		for i := range rs {
			if rs[i].Level == safety.LevelCutoff {
				rs[i].Outputs = slices.Clone(s.CutOutputs)
			}
		}
		return rs, "location"
	}
	if rs, unit, ok := safety.Defaults(s.Type); ok && sameUnit(s.Unit, unit) {
		return rs, "default"
	}
	return nil, ""
}

func sameUnit(a, b string) bool {
	norm := func(u string) string { return strings.ToLower(strings.ReplaceAll(u, " ", "")) }
	return norm(a) == norm(b) || (b == "%vol" && norm(a) == "%")
}

// resolution is the comparison step of a sensor's rules: the configured
// one, else the sensor's own step (one raw count × scale). A float sensor
// has no natural step: its values are compared in the finest step its
// limits are written in (1e-6 without limits). A limit need not be a
// multiple of the step: the value rounded to the step is compared with the
// limit as written (safety.SensorRules.Resolution).
func resolution(s Sensor, rs []safety.Rule) float64 {
	if s.Resolution > 0 {
		return s.Resolution
	}
	if res := safety.SensorResolution(s.Format, s.ScaleOr1(), s.Type); res > 0 {
		return res
	}
	res := 0.0
	for _, r := range rs {
		for _, p := range []*float64{r.Above, r.Below, r.ClearBelow, r.ClearAbove} {
			if p == nil {
				continue
			}
			step := math.Pow(10, -float64(limitDecimals(*p)))
			if res == 0 || step < res {
				res = step
			}
		}
	}
	return res
}

func limitDecimals(x float64) int {
	for d := 0; d < 9; d++ {
		y := x * math.Pow(10, float64(d))
		if math.Abs(y-math.Round(y)) < 1e-9*math.Max(1, math.Abs(y)) {
			return d
		}
	}
	return 9
}

// CalibrationDueTime returns calibration_due as a time (zero if unset or
// invalid: validation reports an invalid one).
func (s Sensor) CalibrationDueTime() time.Time {
	t, _ := parseDue(s.CalibrationDue)
	return t
}

// parseDue reads a calibration_due value: a date (local midnight) or an
// RFC 3339 time.
func parseDue(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", v, time.Local); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2006-01-02) nor an RFC 3339 time", v)
	}
	return t, nil
}

// Resolutions returns each sensor's resolution in engineering units, by
// id: sensors[].resolution, else the step its rules compare in (one raw
// count × scale; for a float32 sensor the finest step its limits are
// written in, 0 without limits). The retained …/current snapshot uses it
// with mqtt.current_deadband. The config must have passed validation.
func (c *Config) Resolutions() map[string]float64 {
	out := make(map[string]float64, len(c.Sensors))
	for _, s := range c.Sensors {
		rs, _ := effectiveRules(s)
		out[s.ID] = resolution(s, rs)
	}
	return out
}
