package safety

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// Rule kinds.
const (
	kindAbove = iota
	kindBelow
	kindEquals
)

type ruleState struct {
	rule       Rule
	kind       int
	want       bool    // equals: the state that raises
	qLimit     float64 // trigger limit in resolution steps
	qClear     float64 // clear limit in resolution steps
	limit      float64 // trigger limit, engineering units (event Limit)
	clear      float64 // clear limit, engineering units (event Limit)
	onFaultCut bool
	outs       []int // indexes of rule.Outputs in Engine.outputs

	active       bool
	pending      bool      // condition holds, waiting for the on-delay
	pendingSince time.Time // when the condition started to hold
}

type sensorState struct {
	id          string
	res         float64
	unlockAfter time.Duration
	staleAfter  time.Duration
	rules       []ruleState
	faultOuts   []string // outputs of on_fault=cut rules (fault event Outputs)
	faultOutIdx []int    // their indexes
	outs        []int    // every output this sensor controls

	seenValid  bool      // has read validly at least once
	faulty     bool      // last reading invalid, or stale
	lockout    bool      // fault lockout in force on faultOuts
	validSince time.Time // start of the current valid run after a fault
	lastSeen   time.Time // engine time of the last reading
	lastValue  float64   // last valid value
	calUntil   time.Time // calibrating while now < calUntil
	status     reading.Status
}

type outputState struct {
	name        string
	cut         bool
	controllers []int // sensor indexes
}

// Engine evaluates every sensor's rules and aggregates output demands. It
// is not safe for concurrent use: one goroutine (the safety loop) owns it.
type Engine struct {
	sensors  []sensorState
	bySensor map[string]int
	outputs  []outputState
	byOutput map[string]int
	fx       Effects  // reused result buffers
	due      dueBound // when Tick can next change anything (due.go)
}

// NewEngine builds an engine for the given sensors. It returns every
// configuration problem found (errors.Join): unknown level, not exactly one
// of above/below/equals, a clear limit on the wrong side of its trigger
// limit, a non-finite limit, a duplicate sensor. A limit need not be a
// multiple of the sensor's resolution. Every output starts cut (see the package doc).
func NewEngine(sensors []SensorRules) (*Engine, error) {
	e := &Engine{bySensor: make(map[string]int), byOutput: make(map[string]int)}
	var errs []error
	for _, sr := range sensors {
		if err := sr.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := e.bySensor[sr.Sensor]; dup {
			errs = append(errs, fmt.Errorf("sensor %s: rules given twice", sr.Sensor))
			continue
		}
		si := len(e.sensors)
		e.bySensor[sr.Sensor] = si
		s := sensorState{
			id:          sr.Sensor,
			res:         sr.resolution(),
			unlockAfter: sr.FaultUnlockAfter,
			staleAfter:  sr.StaleAfter,
			status:      reading.StatusNormal,
		}
		if s.unlockAfter == 0 {
			s.unlockAfter = DefaultFaultUnlockAfter
		}
		for _, r := range sr.Rules {
			rs := ruleState{rule: r, onFaultCut: sr.onFaultCut(r)}
			rs.rule.Outputs = slices.Clone(r.Outputs) // events share it; the caller's slice stays the caller's
			switch {
			case r.Above != nil:
				rs.kind, rs.limit, rs.clear = kindAbove, *r.Above, *r.Above
				if r.ClearBelow != nil {
					rs.clear = *r.ClearBelow
				}
			case r.Below != nil:
				rs.kind, rs.limit, rs.clear = kindBelow, *r.Below, *r.Below
				if r.ClearAbove != nil {
					rs.clear = *r.ClearAbove
				}
			default:
				rs.kind, rs.want = kindEquals, *r.Equals
				if rs.want {
					rs.limit, rs.clear = 1, 1
				}
			}
			rs.qLimit, rs.qClear = rs.steps(s.res)
			for _, name := range r.Outputs {
				oi := e.output(name, si)
				rs.outs = append(rs.outs, oi)
				s.outs = addIdx(s.outs, oi)
				if rs.onFaultCut && !contains(s.faultOutIdx, oi) {
					s.faultOutIdx = append(s.faultOutIdx, oi)
					s.faultOuts = append(s.faultOuts, name)
				}
			}
			s.rules = append(s.rules, rs)
		}
		e.sensors = append(e.sensors, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}

// output returns the index of the named output, creating it (cut), and
// records sensor si as one of its controllers.
func (e *Engine) output(name string, si int) int {
	oi, ok := e.byOutput[name]
	if !ok {
		oi = len(e.outputs)
		e.byOutput[name] = oi
		e.outputs = append(e.outputs, outputState{name: name, cut: true})
	}
	e.outputs[oi].controllers = addIdx(e.outputs[oi].controllers, si)
	return oi
}

func addIdx(xs []int, x int) []int {
	if contains(xs, x) {
		return xs
	}
	return append(xs, x)
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Apply evaluates one reading at engine time now and returns the sensor's
// status and what changed. The status is fault for an invalid reading
// (or one whose value is NaN or infinite),
// else calibrating while the sensor is under calibration, else the highest
// active level (normal if none). A reading of a sensor without rules gets
// normal or fault and no effects. Effects' slices are valid until the next
// Apply or Tick. Apply does not allocate in steady state.
func (e *Engine) Apply(r reading.Reading, now time.Time) (reading.Status, Effects) {
	e.reset()
	si, ok := e.bySensor[r.Sensor]
	if !ok {
		if r.Valid() && !math.IsNaN(r.Value) && !math.IsInf(r.Value, 0) {
			return reading.StatusNormal, e.fx
		}
		return reading.StatusFault, e.fx
	}
	s := &e.sensors[si]
	s.lastSeen = now
	switch {
	case !r.Valid():
		code := r.Code
		if code == "" {
			code = reading.CodeUnknown
		}
		e.fault(s, code, r.Err, now)
	case math.IsNaN(r.Value):
		// Never a number crossing a limit (field case D6): a NaN or an
		// infinity is a sensor fault even if the reading claims a value.
		e.fault(s, reading.CodeNaN, "non-finite value", now)
	case math.IsInf(r.Value, 0):
		e.fault(s, reading.CodeInf, "non-finite value", now)
	default:
		e.valid(s, r.Value, now)
	}
	e.settle(s, now)
	e.due.lower(s.due(now))
	return s.status, e.fx
}

// Tick advances timers at engine time now without a reading: on-delays that
// have run out raise their rules, fault lockouts whose stable period has
// passed release, calibrations end, and a sensor silent for longer than its
// StaleAfter becomes faulty. Call it periodically (e.g. every 100 ms to 1 s)
// from the loop that calls Apply. Effects are as for Apply.
func (e *Engine) Tick(now time.Time) Effects {
	e.reset()
	var next time.Time
	for si := range e.sensors {
		s := &e.sensors[si]
		if s.staleAfter > 0 && !s.faulty && !s.lastSeen.IsZero() && now.Sub(s.lastSeen) > s.staleAfter {
			e.fault(s, reading.CodeStale, "no reading within stale_after", now)
		}
		if !s.faulty {
			for ri := range s.rules {
				rs := &s.rules[ri]
				if !rs.active && rs.pending && now.Sub(rs.pendingSince) >= rs.rule.For {
					e.raise(s, rs, s.lastValue, now)
				}
			}
		}
		e.settle(s, now)
		next = earliest(next, s.due(now))
	}
	e.due = dueBound{at: next, known: true}
	return e.fx
}

// SetCalibrating flags the sensor as under calibration until the given
// time (a zero or past time ends it). While calibrating, its status is
// calibrating (fault still wins) and its events carry Calibration; rules
// and outputs act as usual, since the cut-off test is part of calibration.
// It reports false for a sensor without rules.
func (e *Engine) SetCalibrating(sensor string, until time.Time) bool {
	si, ok := e.bySensor[sensor]
	if !ok {
		return false
	}
	e.sensors[si].calUntil = until
	e.due.known = false // the status changes at the next Tick, which recomputes the bound
	return true
}

// Status returns the sensor's current status (as last computed by Apply or
// Tick) and whether the sensor has rules.
func (e *Engine) Status(sensor string) (reading.Status, bool) {
	si, ok := e.bySensor[sensor]
	if !ok {
		return "", false
	}
	return e.sensors[si].status, true
}

// Cut reports whether the named output is demanded cut, and whether any
// rule controls it.
func (e *Engine) Cut(output string) (cut, known bool) {
	oi, ok := e.byOutput[output]
	if !ok {
		return false, false
	}
	return e.outputs[oi].cut, true
}

// Outputs returns the names of every output a rule controls, in
// configuration order. Drivers set each to Cut(name) at start (all cut).
func (e *Engine) Outputs() []string {
	names := make([]string, len(e.outputs))
	for i, o := range e.outputs {
		names[i] = o.name
	}
	return names
}

func (e *Engine) reset() {
	e.fx.Events = e.fx.Events[:0]
	e.fx.Changes = e.fx.Changes[:0]
}

func (e *Engine) valid(s *sensorState, v float64, now time.Time) {
	if s.faulty {
		s.faulty = false
		s.validSince = now
		e.event(s, RuleEvent{Level: LevelFault, State: StateCleared, Value: v, Valid: true}, now)
	}
	s.seenValid = true
	s.lastValue = v
	q := quantise(v, s.res)
	for ri := range s.rules {
		rs := &s.rules[ri]
		if rs.active {
			if rs.clears(q, v) {
				rs.active = false
				e.event(s, RuleEvent{Level: rs.rule.Level, Direction: rs.direction(), State: StateCleared, Value: v, Valid: true, Limit: rs.clear}, now)
			}
			continue
		}
		if !rs.triggers(q, v) {
			rs.pending = false
			continue
		}
		if !rs.pending {
			rs.pending, rs.pendingSince = true, now
		}
		if now.Sub(rs.pendingSince) >= rs.rule.For {
			e.raise(s, rs, v, now)
		}
	}
}

func (e *Engine) raise(s *sensorState, rs *ruleState, v float64, now time.Time) {
	rs.active, rs.pending = true, false
	e.event(s, RuleEvent{Level: rs.rule.Level, Direction: rs.direction(), State: StateRaised, Value: v, Valid: true, Limit: rs.limit, Outputs: rs.rule.Outputs}, now)
}

func (e *Engine) fault(s *sensorState, code reading.FaultCode, reason string, now time.Time) {
	for ri := range s.rules {
		s.rules[ri].pending = false // an on-delay needs the condition to hold continuously
	}
	if len(s.faultOutIdx) > 0 {
		s.lockout = true
	}
	if !s.faulty {
		s.faulty = true
		e.event(s, RuleEvent{Level: LevelFault, State: StateRaised, Outputs: s.faultOuts, Reason: reason, Code: code}, now)
	}
}

func (e *Engine) event(s *sensorState, ev RuleEvent, now time.Time) {
	ev.Sensor, ev.Time, ev.Calibration = s.id, now, now.Before(s.calUntil)
	e.fx.Events = append(e.fx.Events, ev)
}

// settle releases an expired fault lockout, recomputes the sensor's status
// and the outputs it controls.
func (e *Engine) settle(s *sensorState, now time.Time) {
	if s.lockout && !s.faulty && now.Sub(s.validSince) >= s.unlockAfter {
		s.lockout = false
	}
	switch {
	case s.faulty:
		s.status = reading.StatusFault
	case now.Before(s.calUntil):
		s.status = reading.StatusCalibrating
	default:
		top := Level("")
		for ri := range s.rules {
			if rs := &s.rules[ri]; rs.active && rs.rule.Level.rank() > top.rank() {
				top = rs.rule.Level
			}
		}
		s.status = statusOf(top)
	}
	for _, oi := range s.outs {
		o := &e.outputs[oi]
		cut := false
		for _, ci := range o.controllers {
			if e.demands(&e.sensors[ci], oi) {
				cut = true
				break
			}
		}
		if cut != o.cut {
			o.cut = cut
			e.fx.Changes = append(e.fx.Changes, Change{Output: o.name, Cut: cut, Time: now})
		}
	}
}

// demands reports whether sensor s demands output oi cut.
func (e *Engine) demands(s *sensorState, oi int) bool {
	if !s.seenValid {
		return contains(s.outs, oi) // start-up safe state
	}
	if s.lockout && contains(s.faultOutIdx, oi) {
		return true
	}
	for ri := range s.rules {
		if rs := &s.rules[ri]; rs.active && contains(rs.outs, oi) {
			return true
		}
	}
	return false
}
