// Package reading is hazmon's vocabulary: one sensor sample with its status.
// It depends on the standard library only, so every other package can share it.
package reading

import "time"

// Status is the state a reading is in, as published in the telemetry
// "status" field. The strings are part of the platform contract (v1).
type Status string

// Statuses of a reading. A reading's status is its highest active level.
const (
	StatusNormal      Status = "normal"      // valid value, no rule active
	StatusFault       Status = "fault"       // no valid value: timeout, exception, out of range, NaN, no-value code
	StatusAlarm       Status = "alarm"       // first alarm stage
	StatusAlarm2      Status = "alarm2"      // second alarm stage (chemical sites, GB/T 50493-2019)
	StatusCutoff      Status = "cutoff"      // power cut-off limit reached
	StatusCalibrating Status = "calibrating" // sensor under calibration: not a real event
	StatusBlue        Status = "blue"        // tailings-pond warning colours, GB 51108-2015
	StatusYellow      Status = "yellow"
	StatusOrange      Status = "orange"
	StatusRed         Status = "red"
)

// Reading is one sample of one sensor.
//
// Time is the wall-clock sample time (published as unix milliseconds).
// Value is in engineering units (after scale and offset) and is meaningful
// only when Status is not StatusFault: a fault never carries an invented
// value. Err says why a reading is a fault, for people; Code says it for
// machines (both "" unless Status is StatusFault, and every producer of a
// fault sets both).
type Reading struct {
	Sensor string    // sensor id from the config, e.g. "CH4-101"
	Type   string    // sensor type, e.g. "methane"
	Unit   string    // engineering unit, e.g. "%CH4"
	Time   time.Time // sample time (wall clock)
	Value  float64   // engineering value; undefined when Status == StatusFault
	Status Status
	Err    string    // fault reason, "" unless Status == StatusFault
	Code   FaultCode // fault code, "" unless Status == StatusFault
}

// Valid reports whether r carries a usable value (it is not a fault).
func (r Reading) Valid() bool { return r.Status != StatusFault }
