package safety

import (
	"strconv"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// Alarm levels beyond the rule levels (Level) and LevelFault.
const (
	// LevelFeedAbnormal: an output's feed contradicts its command (馈电异常,
	// domain notes §4): power still present after a cut, or absent while
	// allowed, for longer than the output's feed timeout.
	LevelFeedAbnormal = "feed_abnormal"
	// LevelOutputMismatch: an output was found cut while the agent wanted
	// it energised — something else (a PLC interlock, an emergency stop, an
	// operator) opened it. The agent never energises it again by itself:
	// it stays cut until a technician restores it (Core.Restore).
	LevelOutputMismatch = "output_mismatch"
	// LevelOutputUnconfirmed: a cut was not confirmed (GPIO written, coil
	// read back 0) within MaxCutoffDelay; the lane keeps retrying.
	LevelOutputUnconfirmed = "output_unconfirmed"
	// LevelCalibrationOverdue: the sensor's calibration_due has passed
	// (catalytic methane sensors are calibrated every 15 days, domain notes
	// §4): its readings go on, but the bureau must know they are not
	// vouched for.
	LevelCalibrationOverdue = "calibration_overdue"
)

// CalibrationWarnBefore is how long before a sensor's calibration is due
// the Core warns (EventCalibrationDue).
const CalibrationWarnBefore = 24 * time.Hour

// Alarm reasons the Core sets besides a fault's own.
const (
	// ReasonRestart: the alarm was active when the agent last stopped and is
	// no longer active (cleared), or is still active (raised again with its
	// old id).
	ReasonRestart = "restart"
	// ReasonReload: the reloaded config can no longer raise or clear the
	// alarm (its sensor, rule or output is gone), so it is cleared.
	ReasonReload = "reload"
	// ReasonRestored: a technician restored the output (Core.Restore).
	ReasonRestored = "restored"
)

// Alarm is one alarm raised or cleared. Its identity (Key, ID) names the
// sensor, the level and the rule's direction, so a high and a low rule of
// one level never share an id; raised and cleared of one alarm share ID.
type Alarm struct {
	// ID is Key()+"/"+the raise time in unix ms: unique per alarm, shared by
	// its raised and cleared messages.
	ID string
	// Sensor is the sensor id, the warning group's name (group alarms), or
	// the output's name (LevelOutputMismatch, LevelOutputUnconfirmed).
	Sensor    string
	Level     string // a rule Level, LevelFault or one of the Level* constants above
	Direction string // DirHigh, DirLow or DirState for a rule alarm; "" otherwise
	State     string // StateRaised or StateCleared
	Time      time.Time
	Value     float64 // the value that caused the change, if Valid
	Valid     bool
	Limit     float64 // the trigger (raised) or restore (cleared) limit, if HasLimit
	HasLimit  bool
	Outputs   []string // outputs the alarm cuts (or, for output alarms, the output)
	// Calibration: the sensor was under calibration, so this is not a real
	// event (the cut still acted).
	Calibration bool
	Reason      string // fault reason, feed or output detail, ReasonRestart, ...
	// Code is a fault alarm's machine code (reading.FaultCode of the
	// reading that raised it: timeout, stale, range, ...); "" otherwise.
	Code reading.FaultCode
	// Episode summarises the episode on a cleared alarm (nil on a raise,
	// and on a clear of an alarm of the last run that this run never saw).
	Episode *Episode `json:",omitempty"`
}

// Key is the alarm's identity without its raise time:
// "sensor/level/direction" for a rule alarm, "sensor/level" otherwise.
func (a Alarm) Key() string {
	if a.Direction != "" {
		return a.Sensor + "/" + a.Level + "/" + a.Direction
	}
	return a.Sensor + "/" + a.Level
}

// Event kinds the Core reports (Event.Type).
const (
	EventOutputRestore    = "output_restore"    // a technician restored a held output
	EventOutputTestStart  = "output_test_start" // an output test cut an output
	EventOutputTestEnd    = "output_test_end"
	EventCalibrationStart = "calibration_start"
	EventCalibrationStop  = "calibration_stop"
	EventCalibrationDue   = "calibration_due" // a sensor's calibration is due within CalibrationWarnBefore
)

// Event is something the safety function did on a technician's request.
type Event struct {
	Type   string
	Time   time.Time
	Output string // output events
	Sensor string // calibration events
	Detail string
}

// alarmBook gives alarms their ids and keeps the active set. Owned by the
// Core's goroutine.
type alarmBook struct {
	active map[string]Alarm // key → the raised alarm
	// prev holds the alarms active when the agent last stopped that have
	// neither been raised again nor cleared since start.
	prev    map[string]Alarm
	changed bool
}

func newAlarmBook(prev []Alarm) alarmBook {
	b := alarmBook{active: map[string]Alarm{}, prev: map[string]Alarm{}}
	for _, a := range prev {
		b.prev[a.Key()] = a
	}
	return b
}

// raise records a raised alarm and returns it with its id: the id of the
// same alarm active at the last stop, if there was one (it continues), else
// a new one. A raise of an alarm already active returns ok false.
func (b *alarmBook) raise(a Alarm) (Alarm, bool) {
	k := a.Key()
	if _, dup := b.active[k]; dup {
		return a, false
	}
	if p, ok := b.prev[k]; ok {
		a.ID = p.ID
		if a.Reason == "" {
			a.Reason = ReasonRestart
		}
		delete(b.prev, k)
	} else {
		a.ID = k + "/" + strconv.FormatInt(a.Time.UnixMilli(), 10)
	}
	b.active[k] = a
	b.changed = true
	return a, true
}

// clear records a cleared alarm and returns it with the id of its raise;
// ok is false if it was not active.
func (b *alarmBook) clear(a Alarm) (Alarm, bool) {
	k := a.Key()
	r, ok := b.active[k]
	if !ok {
		return a, false
	}
	a.ID = r.ID
	delete(b.active, k)
	b.changed = true
	return a, true
}

// list returns the active alarms (a new slice).
func (b *alarmBook) list() []Alarm {
	out := make([]Alarm, 0, len(b.active))
	for _, a := range b.active {
		out = append(out, a)
	}
	return out
}
