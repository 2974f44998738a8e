package safety

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// Level is a rule's severity; a reading's status is its highest active level.
type Level string

// Levels, lowest to highest precedence. LevelNormal and LevelFault are never
// a rule's level: LevelNormal is the status with no active rule, LevelFault
// the level of the fault event raised by an invalid reading.
const (
	LevelNormal Level = "normal"
	LevelBlue   Level = "blue"   // tailings-pond warning colours, GB 51108-2015
	LevelYellow Level = "yellow" //
	LevelOrange Level = "orange" //
	LevelRed    Level = "red"    //
	LevelAlarm  Level = "alarm"  // first alarm stage
	LevelAlarm2 Level = "alarm2" // second alarm stage (GB/T 50493-2019)
	LevelCutoff Level = "cutoff" // power cut-off limit
	LevelFault  Level = "fault"  // invalid reading (event level only)
)

// rank orders rule levels; 0 = not a rule level.
func (l Level) rank() int {
	switch l {
	case LevelBlue:
		return 1
	case LevelYellow:
		return 2
	case LevelOrange:
		return 3
	case LevelRed:
		return 4
	case LevelAlarm:
		return 5
	case LevelAlarm2:
		return 6
	case LevelCutoff:
		return 7
	}
	return 0
}

// What a rule does while its sensor is faulty (Rule.OnFault).
const (
	// OnFaultCut demands the rule's outputs cut while the sensor is faulty
	// and until it has read validly for SensorRules.FaultUnlockAfter
	// (fault lockout, 故障闭锁).
	OnFaultCut = "cut"
	// OnFaultHold keeps the rule as it was before the fault (active or not).
	OnFaultHold = "hold"
)

// DefaultFaultUnlockAfter is how long a faulty sensor must read validly,
// continuously, before a fault lockout releases its outputs. The regulation
// says only "after working normally and stably for a while" (domain notes
// §4, S); 10 s is hazmon's default, settable per sensor.
const DefaultFaultUnlockAfter = 10 * time.Second

// DefaultResolution is the comparison quantum used when a sensor has no
// resolution (e.g. a float32 sensor with no resolution configured).
const DefaultResolution = 1e-6

// Rule is one limit on one sensor. Exactly one of Above, Below and Equals
// is set.
//
//   - Above: raised when value ≥ *Above; cleared when value < *ClearBelow
//     (strictly; default ClearBelow = *Above).
//   - Below: raised when value ≤ *Below; cleared when value > *ClearAbove
//     (strictly; default ClearAbove = *Below).
//   - Equals: for a digital sensor (value 0 or 1): raised when
//     (value != 0) == *Equals, cleared otherwise.
//
// The value, rounded to the sensor's resolution (SensorRules.Resolution),
// is compared with the limit as written: 1.4999999 read by a 0.01 sensor is
// 1.50 and reaches a 1.5 cut-off; a 0.03-step sensor reaches a 1.0 limit at
// 1.02 (the limit need not be a multiple of the resolution). For > 0 is an on-delay: the condition must hold
// continuously that long before the rule is raised (clearing is immediate).
type Rule struct {
	Level      Level         // LevelBlue … LevelCutoff
	Above      *float64      // trigger at value ≥ Above (engineering units)
	Below      *float64      // trigger at value ≤ Below
	Equals     *bool         // digital: trigger when the state equals this
	ClearBelow *float64      // Above rules only: clear when value < ClearBelow (the restore value)
	ClearAbove *float64      // Below rules only: clear when value > ClearAbove
	For        time.Duration // on-delay; 0 = immediate
	Outputs    []string      // outputs this rule cuts while raised (NewEngine copies the slice)
	OnFault    string        // OnFaultCut, OnFaultHold, or "" for the default (see SensorRules)
}

// SensorRules are the rules of one sensor.
type SensorRules struct {
	Sensor string // sensor id, matched against reading.Reading.Sensor
	Type   string // sensor type (config "type"), e.g. "methane"; used for defaults
	// Resolution is the comparison quantum in engineering units, e.g. 0.01
	// for a %CH4 sensor with scale 0.01; 0 means DefaultResolution. A value
	// is rounded to it before it is compared with a limit as written; a
	// limit need not be a multiple of it (a 0.03-step sensor meets a 1.0
	// limit at 1.02, the first representable value at or above it).
	Resolution float64
	// FaultUnlockAfter is how long the sensor must read validly,
	// continuously, after a fault before on_fault=cut outputs are released;
	// 0 means DefaultFaultUnlockAfter.
	FaultUnlockAfter time.Duration
	// StaleAfter, if > 0, makes Tick treat the sensor as faulty when no
	// reading has arrived for longer than this (communication lost).
	StaleAfter time.Duration
	// CalibrationDue, if set, is when the sensor's calibration is due: the
	// Core reports EventCalibrationDue CalibrationWarnBefore it and raises
	// LevelCalibrationOverdue from it (until a reload sets a later date).
	CalibrationDue time.Time
	// Rules are the sensor's limits. A rule's OnFault defaults to cut for
	// a cutoff rule (the interlock's fault lockout, domain notes §4) and for
	// any rule of a methane sensor, and to hold otherwise.
	Rules []Rule
}

// validate checks one sensor's rules and returns every problem.
func (s SensorRules) validate() error {
	var errs []error
	bad := func(i int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("sensor %s: rule %d: %s", s.Sensor, i+1, fmt.Sprintf(format, args...)))
	}
	if s.Sensor == "" {
		errs = append(errs, errors.New("sensor with rules has no id"))
	}
	if s.Resolution < 0 || math.IsNaN(s.Resolution) || math.IsInf(s.Resolution, 0) {
		errs = append(errs, fmt.Errorf("sensor %s: resolution %g is not a positive number", s.Sensor, s.Resolution))
	}
	if s.FaultUnlockAfter < 0 || s.StaleAfter < 0 {
		errs = append(errs, fmt.Errorf("sensor %s: negative fault_unlock_after or stale_after", s.Sensor))
	}
	for i, r := range s.Rules {
		if r.Level.rank() == 0 {
			bad(i, "level %q is not one of blue, yellow, orange, red, alarm, alarm2, cutoff", r.Level)
		}
		n := 0
		for _, set := range []bool{r.Above != nil, r.Below != nil, r.Equals != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			bad(i, "want exactly one of above, below, equals; got %d", n)
		}
		if r.ClearBelow != nil && r.Above == nil {
			bad(i, "clear_below needs above")
		}
		if r.ClearAbove != nil && r.Below == nil {
			bad(i, "clear_above needs below")
		}
		if r.Above != nil && r.ClearBelow != nil && *r.ClearBelow > *r.Above {
			bad(i, "clear_below %g is above the trigger limit %g (the rule would chatter)", *r.ClearBelow, *r.Above)
		}
		if r.Below != nil && r.ClearAbove != nil && *r.ClearAbove < *r.Below {
			bad(i, "clear_above %g is below the trigger limit %g (the rule would chatter)", *r.ClearAbove, *r.Below)
		}
		for _, p := range []*float64{r.Above, r.Below, r.ClearBelow, r.ClearAbove} {
			if p == nil {
				continue
			}
			if math.IsNaN(*p) || math.IsInf(*p, 0) {
				bad(i, "limit %g is not finite", *p)
			}
		}
		if r.For < 0 {
			bad(i, "negative for %s", r.For)
		}
		switch r.OnFault {
		case "", OnFaultCut, OnFaultHold:
		default:
			bad(i, "on_fault %q is not cut or hold", r.OnFault)
		}
		for _, o := range r.Outputs {
			if o == "" {
				bad(i, "empty output name")
			}
		}
	}
	return errors.Join(errs...)
}

func (s SensorRules) resolution() float64 {
	if s.Resolution > 0 {
		return s.Resolution
	}
	return DefaultResolution
}

// onFaultCut reports whether r cuts its outputs while the sensor is faulty.
func (s SensorRules) onFaultCut(r Rule) bool {
	return s.OnFault(r) == OnFaultCut
}

// OnFault returns what rule r does while the sensor is faulty: its own
// on_fault, else OnFaultCut for a cut-off rule and for any rule of a
// methane sensor (fault lockout, domain notes §4), else OnFaultHold.
func (s SensorRules) OnFault(r Rule) string {
	if r.OnFault != "" {
		return r.OnFault
	}
	if r.Level == LevelCutoff || s.Type == "methane" {
		return OnFaultCut
	}
	return OnFaultHold
}

// RuleEvent is what the engine reports: a rule (or a fault) raised or cleared.
type RuleEvent struct {
	Sensor      string
	Level       Level     // the rule's level, or LevelFault
	Direction   string    // DirHigh, DirLow or DirState for a rule event; "" for a fault event
	State       string    // StateRaised or StateCleared
	Time        time.Time // the engine time (Apply's or Tick's now) of the change
	Value       float64   // the value that caused the change; 0 when !Valid
	Valid       bool      // false for a fault event
	Limit       float64   // the trigger limit (raised) or clear limit (cleared); 1/0 for equals true/false
	Outputs     []string  // outputs the rule (or fault lockout) demands cut; shared, do not modify
	Calibration bool      // the sensor was under calibration: not a real alarm
	Reason      string    // fault reason (reading.Reading.Err), "" otherwise
	// Code is a fault event's code: the reading's (reading.Reading.Code),
	// reading.CodeStale for a sensor silent beyond its StaleAfter, nan or
	// inf for a non-finite value; "" for a rule event.
	Code reading.FaultCode
}

// Directions of a rule (RuleEvent.Direction): with its sensor and level they
// name the rule, since validation allows one rule per level and direction.
const (
	DirHigh  = "high"  // an above rule
	DirLow   = "low"   // a below rule
	DirState = "state" // an equals rule of a digital sensor
)

// Event states.
const (
	StateRaised  = "raised"
	StateCleared = "cleared"
)

// Change is a change of an output's demanded state.
type Change struct {
	Output string
	Cut    bool      // true: cut (safe state); false: restored
	Time   time.Time // engine time of the change
}

// Effects are what one Apply or Tick produced. Its slices are reused: they
// are valid only until the next call to Apply or Tick.
type Effects struct {
	Events  []RuleEvent
	Changes []Change
}

// statusOf returns the reading status for a level.
func statusOf(l Level) reading.Status {
	if l == "" {
		return reading.StatusNormal
	}
	return reading.Status(l)
}

// SensorResolution returns the comparison resolution for a sensor from its
// decode format and scale (config "format", "scale", "type"): |scale| for
// integer formats (one raw count), 1 for bool, and for float32, which has no
// natural step, MethaneResolution (0.01 %CH4) for a methane sensor and 0
// (DefaultResolution) otherwise.
func SensorResolution(format string, scale float64, sensorType string) float64 {
	switch format {
	case "int16", "uint16", "int32", "uint32":
		return math.Abs(scale)
	case "bool":
		return 1
	}
	if sensorType == "methane" {
		return MethaneResolution
	}
	return 0
}
