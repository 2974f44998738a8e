package safety

import "math"

// A rule's comparisons in the sensor's resolution steps: what the engine
// compares a quantised value with, and the direction an alarm names.

// quantise returns x in resolution steps (the value as the sensor can show it).
func quantise(x, res float64) float64 { return math.Round(x / res) }

// stepEps absorbs the binary error of limit/resolution (1.5/0.01 is
// 150.00000000000003): a limit within it of a step is that step.
const stepEps = 1e-9

// steps returns the trigger and clear limits in resolution steps such that
// comparing a quantised value q with them is comparing q×res with the
// limits as written: above: q×res ≥ limit ⇔ q ≥ ⌈limit/res⌉ and q×res <
// clear ⇔ q < ⌈clear/res⌉; below: q×res ≤ limit ⇔ q ≤ ⌊limit/res⌋ and q×res
// > clear ⇔ q > ⌊clear/res⌋. For a limit that is a multiple of res both are
// exactly limit/res.
func (rs *ruleState) steps(res float64) (qLimit, qClear float64) {
	up := func(x float64) float64 { return math.Ceil(x/res - stepEps*math.Max(1, math.Abs(x/res))) }
	down := func(x float64) float64 { return math.Floor(x/res + stepEps*math.Max(1, math.Abs(x/res))) }
	switch rs.kind {
	case kindAbove:
		return up(rs.limit), up(rs.clear)
	case kindBelow:
		return down(rs.limit), down(rs.clear)
	}
	return 0, 0
}

// direction names the rule's kind for alarm identity.
func (rs *ruleState) direction() string {
	switch rs.kind {
	case kindAbove:
		return DirHigh
	case kindBelow:
		return DirLow
	}
	return DirState
}

// triggers reports whether the quantised value q (raw value v for a
// state rule) reaches the rule's limit.
func (rs *ruleState) triggers(q, v float64) bool {
	switch rs.kind {
	case kindAbove:
		return q >= rs.qLimit
	case kindBelow:
		return q <= rs.qLimit
	}
	return (v != 0) == rs.want
}

// clears reports whether q (v for a state rule) is past the rule's clear
// (restore) limit.
func (rs *ruleState) clears(q, v float64) bool {
	switch rs.kind {
	case kindAbove:
		return q < rs.qClear
	case kindBelow:
		return q > rs.qClear
	}
	return (v != 0) != rs.want
}
