package safety

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// holdCause is what cut an output when a reload began, judged by the old
// rules: the output stays cut until every cause has gone (or a technician
// restores it), even if the new rules no longer name the sensor — a reload
// never energises an output while the reading that cut it still stands.
type holdCause struct {
	sensor string
	// lockout: the sensor was faulty (fault lockout); it goes once the
	// sensor has read validly for unlockAfter. Otherwise rule: an old rule
	// was raised; it goes once a valid reading clears that old rule.
	lockout     bool
	rule        ruleState // the old rule (its limits in the old resolution)
	res         float64
	unlockAfter time.Duration
	validSince  time.Time // lockout: start of the current valid run
}

func (h holdCause) describe() string {
	if h.lockout {
		return fmt.Sprintf("held since a reload: %s was faulty (fault lockout of the previous config)", h.sensor)
	}
	return fmt.Sprintf("held since a reload: %s %s of the previous config still stands", h.sensor, h.rule.rule.Level)
}

// causes returns what demands output name cut in e (from the rules, not
// from start-up: a sensor never read gives no cause).
func (e *Engine) causes(name string, now time.Time) []holdCause {
	oi, ok := e.byOutput[name]
	if !ok {
		return nil
	}
	var out []holdCause
	for _, si := range e.outputs[oi].controllers {
		s := &e.sensors[si]
		if !s.seenValid {
			continue
		}
		if s.lockout && contains(s.faultOutIdx, oi) {
			h := holdCause{sensor: s.id, lockout: true, unlockAfter: s.unlockAfter}
			if !s.faulty {
				h.validSince = s.validSince
			}
			out = append(out, h)
		}
		for ri := range s.rules {
			if rs := &s.rules[ri]; rs.active && contains(rs.outs, oi) {
				out = append(out, holdCause{sensor: s.id, rule: *rs, res: s.res})
			}
		}
	}
	return out
}

// gone reports whether r (of the cause's sensor) ends the cause.
func (h *holdCause) gone(r reading.Reading, now time.Time) bool {
	if !r.Valid() {
		h.validSince = time.Time{}
		return false
	}
	if h.lockout {
		if h.validSince.IsZero() {
			h.validSince = now
		}
		return now.Sub(h.validSince) >= h.unlockAfter
	}
	return h.rule.clears(quantise(r.Value, h.res), r.Value)
}

// addCauses adds to hs the causes of add it does not hold yet.
func addCauses(hs, add []holdCause) []holdCause {
	for _, h := range add {
		dup := false
		for _, x := range hs {
			if x.sensor == h.sensor && x.lockout == h.lockout && x.rule.kind == h.rule.kind &&
				x.rule.rule.Level == h.rule.rule.Level && x.rule.qClear == h.rule.qClear && x.res == h.res {
				dup = true
				break
			}
		}
		if !dup {
			hs = append(hs, h)
		}
	}
	return hs
}

// legacyReading lets a reading end the reload holds it is the cause of.
func (c *Core) legacyReading(r reading.Reading, now time.Time) {
	for _, o := range c.st.outs {
		if len(o.legacy) == 0 {
			continue
		}
		kept := o.legacy[:0]
		for _, h := range o.legacy {
			if h.sensor != r.Sensor || !h.gone(r, now) {
				kept = append(kept, h)
			}
		}
		o.legacy = kept
	}
}

// ErrTesting refuses a reload while an output test runs.
var ErrTesting = errors.New("an output test is running")

// Reload makes spec (with lanes for its outputs) the Core's, at once and
// without a pause in evaluation: the new rules inherit the old ones' state
// (Engine.Inherit: an edited raised rule stays raised until its new
// restore limit), outputs that stay keep their state and holds, and every
// output cut when the reload begins stays cut while what cut it under the
// old rules still stands (a moved, renamed or removed rule or sensor never
// restores power). Active alarms the new spec can no longer raise or clear
// are cleared (ReasonReload). A bad spec is refused and the running one
// stays; so is a reload during an output test (ErrTesting).
func (c *Core) Reload(ctx context.Context, spec Spec, lanes map[string]Lane) error {
	engine, err := NewEngine(spec.Sensors)
	if err != nil {
		return fmt.Errorf("safety: %w", err)
	}
	var rerr error
	err = c.do(ctx, func(now time.Time) {
		for _, o := range c.st.outs {
			if now.Before(o.testUntil) {
				rerr = ErrTesting
				return
			}
		}
		carry := map[string][]holdCause{}
		for _, o := range c.st.outs {
			if o.cut {
				carry[o.spec.Name] = c.st.engine.causes(o.spec.Name, now)
			}
		}
		if rerr = checkOutputs(spec, lanes); rerr != nil {
			return
		}
		fx := engine.Inherit(c.st.engine, now)
		c.st.engine = engine
		c.install(spec, lanes, carry, now)
		c.effects(fx, now)
		c.clearImpossible(now)
		c.command(now)
	})
	if err != nil {
		return err
	}
	return rerr
}

// clearImpossible clears the active alarms that the current spec can no
// longer clear: their sensor, rule (level and direction), group or output
// is gone. feed_abnormal is always cleared and re-checked afresh.
func (c *Core) clearImpossible(now time.Time) {
	possible := map[string]bool{}
	for _, sr := range c.st.spec.Sensors {
		possible[sr.Sensor+"/"+string(LevelFault)] = true
		for _, r := range sr.Rules {
			rs := ruleState{}
			switch {
			case r.Above != nil:
				rs.kind = kindAbove
			case r.Below != nil:
				rs.kind = kindBelow
			default:
				rs.kind = kindEquals
			}
			possible[sr.Sensor+"/"+string(r.Level)+"/"+rs.direction()] = true
		}
	}
	for _, g := range c.st.spec.Groups {
		for _, l := range []Level{LevelBlue, LevelYellow, LevelOrange, LevelRed} {
			possible[g.Name+"/"+string(l)] = true
		}
	}
	for id, d := range c.st.due {
		possible[id+"/"+LevelCalibrationOverdue] = d.overdue
	}
	for _, o := range c.st.outs {
		possible[o.spec.Name+"/"+LevelOutputMismatch] = o.latched != ""
		possible[o.spec.Name+"/"+LevelOutputUnconfirmed] = o.unconfirmed
		o.feed.abnormal = false
	}
	for k, a := range c.st.alarms.active {
		if possible[k] {
			continue
		}
		cl := a
		cl.State, cl.Time, cl.Reason, cl.Valid, cl.HasLimit = StateCleared, now, ReasonReload, false, false
		c.emit(cl)
	}
}
