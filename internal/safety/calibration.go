package safety

import "time"

// calibrationDue is the due-date watch of one sensor.
type calibrationDue struct {
	due     time.Time
	warned  bool // EventCalibrationDue sent for due
	overdue bool // LevelCalibrationOverdue raised for due
}

// installCalibration takes the due dates of spec, keeping what was already
// reported for a date that did not change; an overdue alarm whose date a
// reload moved away (or removed) is cleared.
func (c *Core) installCalibration(spec Spec, now time.Time) {
	next := map[string]*calibrationDue{}
	for _, sr := range spec.Sensors {
		if sr.CalibrationDue.IsZero() {
			continue
		}
		d := &calibrationDue{due: sr.CalibrationDue}
		if p := c.st.due[sr.Sensor]; p != nil && p.due.Equal(d.due) {
			*d = *p
		}
		next[sr.Sensor] = d
	}
	for id, p := range c.st.due {
		if d := next[id]; p.overdue && (d == nil || !d.overdue) {
			c.emit(Alarm{Sensor: id, Level: LevelCalibrationOverdue, State: StateCleared, Time: now,
				Reason: "calibration_due moved to a later date"})
		}
	}
	c.st.due = next
	c.st.calNext = dueBound{} // unknown until the next tick
}

// checkCalibration warns CalibrationWarnBefore a due date and raises the
// overdue alarm at it.
func (c *Core) checkCalibration(now time.Time) {
	for id, d := range c.st.due {
		if !d.warned && !now.Before(d.due.Add(-CalibrationWarnBefore)) && now.Before(d.due) {
			d.warned = true
			c.event(Event{Type: EventCalibrationDue, Time: now, Sensor: id, Detail: "calibration due " + d.due.Format(time.RFC3339)})
		}
		if !d.overdue && !now.Before(d.due) {
			d.overdue, d.warned = true, true
			c.emit(Alarm{Sensor: id, Level: LevelCalibrationOverdue, State: StateRaised, Time: now,
				Reason: "calibration was due " + d.due.Format(time.RFC3339)})
		}
	}
	c.calibrationNext()
}
