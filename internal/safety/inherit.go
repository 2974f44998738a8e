package safety

import (
	"reflect"
	"time"
)

// Inherit carries prev's state into e, which is a new engine built from a
// reloaded config, so a reload does not drop outputs' state:
//
//   - a sensor in both keeps what prev knew of it (seen valid, fault and
//     fault lockout, last value, calibration); each unchanged rule keeps
//     its raised and on-delay state; an edited rule whose predecessor (same
//     level and kind) is raised starts raised and clears only if the last
//     value is past its new restore limit; new rules are evaluated against
//     the sensor's last valid value;
//   - an output in both starts in prev's demanded state instead of cut; a
//     new output starts cut and follows its sensors' known state (a sensor
//     never read keeps it cut, as at start-up).
//
// The returned Effects are the raises, clears and output changes that the
// new rules imply at now (e.g. a stricter limit raised by the last value);
// they are valid until the next Apply, Tick or Inherit. Call it before the
// first Apply. Both engines must be owned by the caller (not in use).
func (e *Engine) Inherit(prev *Engine, now time.Time) Effects {
	e.reset()
	for oi := range e.outputs {
		o := &e.outputs[oi]
		if pi, ok := prev.byOutput[o.name]; ok {
			o.cut = prev.outputs[pi].cut
		}
	}
	for si := range e.sensors {
		s := &e.sensors[si]
		pi, ok := prev.bySensor[s.id]
		if !ok {
			continue
		}
		p := &prev.sensors[pi]
		s.seenValid, s.faulty, s.lockout = p.seenValid, p.faulty, p.lockout
		s.validSince, s.lastSeen, s.lastValue, s.calUntil = p.validSince, p.lastSeen, p.lastValue, p.calUntil
		if !s.lockout && s.faulty && len(s.faultOutIdx) > 0 {
			s.lockout = true // a new on_fault=cut rule on a sensor already faulty
		}
		for ri := range s.rules {
			rs := &s.rules[ri]
			if pr := sameRule(rs, p.rules); pr != nil { // kept as it was: keeps its state
				rs.active, rs.pending, rs.pendingSince = pr.active, pr.pending, pr.pendingSince
			} else if successorActive(rs, p.rules) {
				// An edited rule whose predecessor (same level and kind) is
				// raised stays raised, without its on-delay: it clears only
				// when the last value is past its new restore limit, so an
				// edit never restores power on its own.
				rs.active = true
			}
		}
		if s.seenValid && !s.faulty {
			e.valid(s, s.lastValue, now) // new or changed rules meet the last value
		}
	}
	for si := range e.sensors {
		e.settle(&e.sensors[si], now)
	}
	e.due = dueBound{} // unknown until the first Tick: the state came from prev
	return e.fx
}

// successorActive reports whether a rule of prev with rs's level and kind
// (above, below or equals) is raised.
func successorActive(rs *ruleState, prev []ruleState) bool {
	for i := range prev {
		if p := &prev[i]; p.active && p.kind == rs.kind && p.rule.Level == rs.rule.Level {
			return true
		}
	}
	return false
}

// sameRule returns the rule of prev that is the same limit with the same
// outputs and fault behaviour as rs, or nil.
func sameRule(rs *ruleState, prev []ruleState) *ruleState {
	for i := range prev {
		p := &prev[i]
		if p.onFaultCut == rs.onFaultCut && p.qLimit == rs.qLimit && p.qClear == rs.qClear && reflect.DeepEqual(p.rule, rs.rule) {
			return p
		}
	}
	return nil
}
