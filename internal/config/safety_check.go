package config

import (
	"fmt"
	"strings"

	"github.com/hazmon/hazmon/internal/safety"
)

// validateSafety checks rules, location presets, regulation limits and
// outputs.
func (c *Config) validateSafety(k *checker) {
	outputs := map[string]int{}
	feeds := map[string]int{}
	sensors := map[string]*Sensor{}
	for i := range c.Sensors {
		sensors[c.Sensors[i].ID] = &c.Sensors[i]
	}
	for i, o := range c.Outputs {
		p := fmt.Sprintf("outputs[%d]", i)
		k.unique(p+".name", o.Name, "outputs", i, outputs)
		switch {
		case (o.GPIO == nil) == (o.Modbus == nil):
			k.errf(p, "set exactly one of gpio or modbus")
		case o.GPIO != nil:
			if o.GPIO.Chip == "" {
				k.errf(p+".gpio.chip", "required, e.g. gpiochip0")
			}
			if o.GPIO.Line < 0 || o.GPIO.Line > 511 {
				k.errf(p+".gpio.line", "%d is outside 0..511", o.GPIO.Line)
			}
		case o.Modbus != nil:
			b := c.Bus(o.Modbus.Bus)
			if b == nil {
				k.errf(p+".modbus.bus", "%s", notDefined(o.Modbus.Bus, "a bus", "buses", c.busNames()))
			} else if lo, hi := slaveRange(b.Protocol); o.Modbus.Slave < lo || o.Modbus.Slave > hi {
				k.errf(p+".modbus.slave", "%d is outside %d..%d", o.Modbus.Slave, lo, hi)
			}
			if o.Modbus.Coil < 0 || o.Modbus.Coil > 65535 {
				k.errf(p+".modbus.coil", "%d is outside 0..65535", o.Modbus.Coil)
			}
		}
		if o.Feed != "" {
			if j, shared := feeds[o.Feed]; shared {
				k.errf(p+".feed", "%q is already the feed of outputs[%d]: give each output its own feed contact", o.Feed, j)
			}
			feeds[o.Feed] = i
			if s, ok := sensors[o.Feed]; !ok {
				k.errf(p+".feed", "%s", notDefined(o.Feed, "a sensor", "sensors", c.sensorIDs()))
			} else if s.Format != "bool" {
				k.errf(p+".feed", "sensor %q is not digital (format bool)", o.Feed)
			}
		}
		if o.FeedTimeout.D() < 0 {
			k.errf(p+".feed_timeout", "must not be negative")
		}
		if hb := o.Heartbeat; hb != nil {
			switch {
			case o.Modbus == nil:
				k.errf(p+".heartbeat", "only a modbus output has a heartbeat coil")
			case hb.Coil < 0 || hb.Coil > 65535:
				k.errf(p+".heartbeat.coil", "%d is outside 0..65535", hb.Coil)
			case hb.Coil == o.Modbus.Coil:
				k.errf(p+".heartbeat.coil", "%d is the output's own coil", hb.Coil)
			}
			if e := hb.Every.D(); e < MinHeartbeatEvery || e > MaxHeartbeatEvery {
				k.errf(p+".heartbeat.every", "%s is outside %s..%s", e, MinHeartbeatEvery, MaxHeartbeatEvery)
			}
		}
	}

	named := map[string]bool{}
	for _, s := range c.Sensors {
		rs, _ := effectiveRules(s)
		for _, r := range rs {
			for _, o := range r.Outputs {
				named[o] = true
			}
		}
	}
	for i, o := range c.Outputs {
		if o.Name != "" && !named[o.Name] {
			k.warnf(fmt.Sprintf("outputs[%d].name", i), "no rule names %q: it starts cut and stays cut", o.Name)
		}
	}

	groups := map[string]int{}
	for i, g := range c.WarningGroups {
		p := fmt.Sprintf("warning_groups[%d]", i)
		if g.Name == "" {
			k.errf(p+".name", "required")
		} else if j, dup := groups[g.Name]; dup {
			k.errf(p+".name", "%q is already used by warning_groups[%d]", g.Name, j)
		} else if _, clash := sensors[g.Name]; clash {
			k.errf(p+".name", "%q is a sensor id: a group's alarms would be mistaken for the sensor's", g.Name)
		} else {
			groups[g.Name] = i
			k.id(p+".name", g.Name)
		}
		if len(g.Sensors) < 2 {
			k.errf(p+".sensors", "a warning group combines at least 2 sensors")
		}
		seen := map[string]bool{}
		for j, id := range g.Sensors {
			sp := fmt.Sprintf("%s.sensors[%d]", p, j)
			s, ok := sensors[id]
			switch {
			case !ok:
				k.errf(sp, "%s", notDefined(id, "a sensor", "sensors", c.sensorIDs()))
			case seen[id]:
				k.errf(sp, "%q is listed twice", id)
			case !hasColourRule(*s):
				k.warnf(sp, "%q has no blue/yellow/orange/red rule: it never counts", id)
			}
			seen[id] = true
		}
	}

	for i, s := range c.Sensors {
		p := fmt.Sprintf("sensors[%d]", i)
		if _, err := parseDue(s.CalibrationDue); err != nil {
			k.errf(p+".calibration_due", "%v", err)
		}
		c.validateRegistry(k, p, s)
		for j, r := range s.Rules {
			c.validateRule(k, fmt.Sprintf("%s.rules[%d]", p, j), s, r, outputs)
		}
		checkSameLevel(k, p, s.Rules)
		for j, name := range s.CutOutputs {
			if _, ok := outputs[name]; !ok {
				k.errf(fmt.Sprintf("%s.cut_outputs[%d]", p, j), "%s", notDefined(name, "an output", "outputs", c.outputNames()))
			}
		}
		if s.Location != "" {
			row, ok := methaneRow(s.Location)
			switch {
			case !ok:
				msg := fmt.Sprintf("%q is not a location of the methane table (see README)", s.Location)
				if near := nearest(s.Location, methaneLocations()); near != "" {
					msg += fmt.Sprintf("; did you mean %q?", near)
				}
				k.errf(p+".location", "%s", msg)
			case s.Type != "methane":
				k.errf(p+".location", "location presets are methane settings; this sensor is %s", s.Type)
			default:
				c.checkMethane(k, p, s, row)
			}
		}
		if len(s.CutOutputs) > 0 && (s.Location == "" || len(s.Rules) > 0) {
			k.errf(p+".cut_outputs", "only with location and no hand-written rules (put outputs on the cutoff rule)")
		}
		if s.Type == "lel" {
			c.checkLEL(k, p, s)
		}
		if s.Type == "methane" {
			if rs, _ := effectiveRules(s); len(rs) == 0 {
				k.warnf(p+".location", "a methane sensor with no location and no rules only reports: no alarm, no cut-off")
			}
			if d := s.FaultUnlockAfter.D(); d > 0 && d < safety.DefaultFaultUnlockAfter {
				k.warnf(p+".fault_unlock_after", "%s is shorter than the default %s: a flickering sensor would release its cut-off lockout", s.FaultUnlockAfter, safety.DefaultFaultUnlockAfter)
			}
		}
		if s.FaultUnlockAfter.D() < 0 {
			k.errf(p+".fault_unlock_after", "must not be negative")
		}
		if s.Resolution < 0 {
			k.errf(p+".resolution", "must not be negative")
		}
		if rs, _ := effectiveRules(s); len(rs) > 0 {
			if _, err := safety.NewEngine([]safety.SensorRules{{Sensor: s.ID, Type: s.Type, Resolution: resolution(s, rs), Rules: rs}}); err != nil {
				k.errf(p+".rules", "%v", err)
			}
		}
	}
}

func slaveRange(protocol string) (int, int) {
	if protocol == "tcp" {
		return 0, 255
	}
	return 1, 247
}

func (c *Config) validateRule(k *checker, p string, s Sensor, r Rule, outputs map[string]int) {
	if r.Level == "" {
		k.errf(p+".level", "required: one of %s", strings.Join(ruleLevels, ", "))
	} else if !oneOf(r.Level, ruleLevels...) {
		k.errf(p+".level", "%q: use one of %s", r.Level, strings.Join(ruleLevels, ", "))
	}
	n := 0
	for _, set := range []bool{r.Above != nil, r.Below != nil, r.Equals != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		k.errf(p, "set exactly one of above, below or equals")
	}
	if r.Equals != nil && s.Format != "bool" {
		k.errf(p+".equals", "only for a digital (bool) sensor; use above or below")
	}
	if (r.Above != nil || r.Below != nil) && s.Format == "bool" {
		k.errf(p, "a digital sensor takes equals: true|false")
	}
	if r.ClearBelow != nil {
		if r.Above == nil {
			k.errf(p+".clear_below", "only with above")
		} else if *r.ClearBelow > *r.Above {
			k.errf(p+".clear_below", "%g is above the trigger limit %g: the rule could never clear", *r.ClearBelow, *r.Above)
		}
	}
	if r.ClearAbove != nil {
		if r.Below == nil {
			k.errf(p+".clear_above", "only with below")
		} else if *r.ClearAbove < *r.Below {
			k.errf(p+".clear_above", "%g is below the trigger limit %g: the rule could never clear", *r.ClearAbove, *r.Below)
		}
	}
	if r.For.D() < 0 {
		k.errf(p+".for", "must not be negative")
	}
	if r.Level == "cutoff" && r.For.D() > 0 {
		report := k.errf
		if s.OverrideRegulation {
			report = k.warnf
		}
		switch {
		case s.Type == "methane":
			report(p+".for", "a methane cut-off must act at once (GB 50581-2010 §3.1.4: within 2 s of the over-limit); remove for")
		case r.For.D() > MaxCutoffDelay:
			report(p+".for", "%s delays the cut-off beyond the 2 s of GB 50581-2010 §3.1.4", r.For)
		}
	}
	if r.OnFault != "" && !oneOf(r.OnFault, safety.OnFaultCut, safety.OnFaultHold) {
		k.errf(p+".on_fault", "%q: use cut or hold", r.OnFault)
	}
	for j, name := range r.Outputs {
		if _, ok := outputs[name]; !ok {
			k.errf(fmt.Sprintf("%s.outputs[%d]", p, j), "%s", notDefined(name, "an output", "outputs", c.outputNames()))
		}
	}
	if r.Level == "cutoff" && len(r.Outputs) == 0 {
		k.warnf(p+".outputs", "a cutoff rule without outputs cuts nothing (it only reports)")
	}
}

// methaneLocations lists the locations of the methane table.
func methaneLocations() []string {
	rows, _ := safety.MethaneTable()
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.Location)
	}
	return out
}

func methaneRow(location string) (safety.MethaneRow, bool) {
	rows, err := safety.MethaneTable()
	if err != nil {
		return safety.MethaneRow{}, false
	}
	for _, r := range rows {
		if r.Location == location {
			return r, true
		}
	}
	return safety.MethaneRow{}, false
}

// checkMethane rejects hand-written methane rules looser than the location's
// limits (Coal Mine Safety Regulations Art. 498): an alarm or cut-off limit
// above the table's, or a restore value above the table's.
func (c *Config) checkMethane(k *checker, p string, s Sensor, row safety.MethaneRow) {
	report := k.errf
	if s.OverrideRegulation {
		report = k.warnf
	}
	hasAlarm, hasCut := false, false
	for j, r := range s.Rules {
		rp := fmt.Sprintf("%s.rules[%d]", p, j)
		if r.Above == nil {
			continue
		}
		switch r.Level {
		case "alarm":
			hasAlarm = true
			if r.For.D() > 0 {
				k.warnf(rp+".for", "an on-delay on a methane alarm delays it beyond the table's \u2265 %g %%CH4", row.Alarm)
			}
			if *r.Above > row.Alarm {
				report(rp+".above", "alarm at %g %%CH4 is looser than the %s limit %g (Coal Mine Safety Regulations Art. 498)", *r.Above, s.Location, row.Alarm)
			}
		case "cutoff":
			hasCut = true
			if !row.HasCutoff {
				continue
			}
			if *r.Above > row.Cutoff {
				report(rp+".above", "cut-off at %g %%CH4 is looser than the %s limit %g (Art. 498)", *r.Above, s.Location, row.Cutoff)
			}
			clear := *r.Above
			if r.ClearBelow != nil {
				clear = *r.ClearBelow
			}
			if clear > row.Restore {
				report(rp+".clear_below", "restore at %g %%CH4 is looser than the %s restore value %g (Art. 498)", clear, s.Location, row.Restore)
			}
			if r.OnFault == safety.OnFaultHold {
				report(rp+".on_fault", "a methane cut-off must cut while its sensor is faulty (fault lockout)")
			}
		}
	}
	if len(s.Rules) > 0 {
		if !hasAlarm {
			report(p+".rules", "no alarm rule: %s requires an alarm at %g %%CH4", s.Location, row.Alarm)
		}
		if row.HasCutoff && !hasCut {
			report(p+".rules", "no cutoff rule: %s requires a cut-off at %g %%CH4", s.Location, row.Cutoff)
		}
	} else if row.HasCutoff && len(s.CutOutputs) == 0 {
		k.warnf(p+".cut_outputs", "the %s preset's cut-off cuts nothing: list the outputs feeding %s", s.Location, row.CutoffArea)
	} else if !row.HasCutoff && len(s.CutOutputs) > 0 {
		// A warning, not an error: an agent that refused to start on it
		// after an upgrade would monitor nothing.
		k.warnf(p+".cut_outputs", "the %s preset has no cut-off (alarm only, Art. 498), so this sensor never cuts these outputs (if no other rule names one, it stays cut from the start): remove cut_outputs, or write the rules by hand with a cutoff rule", s.Location)
	}
}

// checkLEL applies GB/T 50493-2019 to a combustible-gas (% LEL) sensor.
func (c *Config) checkLEL(k *checker, p string, s Sensor) {
	report := k.errf
	if s.OverrideRegulation {
		report = k.warnf
	}
	for j, r := range s.Rules {
		if r.Above == nil {
			continue
		}
		rp := fmt.Sprintf("%s.rules[%d].above", p, j)
		switch r.Level {
		case "alarm":
			if *r.Above > LELAlarm1Max {
				report(rp, "level-1 alarm at %g %%LEL is looser than %g %%LEL (GB/T 50493-2019)", *r.Above, LELAlarm1Max)
			}
		case "alarm2":
			if *r.Above > LELAlarm2Max {
				report(rp, "level-2 alarm at %g %%LEL is looser than %g %%LEL (GB/T 50493-2019)", *r.Above, LELAlarm2Max)
			}
		}
	}
}

func hasColourRule(s Sensor) bool {
	for _, r := range s.Rules {
		if oneOf(r.Level, "blue", "yellow", "orange", "red") {
			return true
		}
	}
	return false
}

// checkSameLevel allows two rules of one level on a sensor only as a high
// and a low limit that cannot both hold (an alarm is known by sensor and
// level: two of them raised at once could not be told apart).
func checkSameLevel(k *checker, p string, rs []Rule) {
	for j := range rs {
		for i := 0; i < j; i++ {
			a, b := rs[i], rs[j]
			if a.Level != b.Level || a.Level == "" {
				continue
			}
			hi, lo := a, b
			if hi.Above == nil {
				hi, lo = b, a
			}
			if hi.Above == nil || lo.Below == nil {
				k.errf(fmt.Sprintf("%s.rules[%d].level", p, j), "%s is already rules[%d]: one %s rule per direction on a sensor", b.Level, i, b.Level)
			} else if *hi.Above <= *lo.Below {
				k.errf(fmt.Sprintf("%s.rules[%d]", p, j), "the %s limits overlap (above %g, below %g): both could hold at once", b.Level, *hi.Above, *lo.Below)
			}
		}
	}
}
