package safety

import "time"

// IdleTickEvery is how often the Core advances its timers when none of them
// can come due sooner: no output is configured (heartbeats, feed timeouts,
// confirmations and output tests are timed by the ticks), no calibration
// period is running, and no on-delay, fault unlock, stale deadline, end of
// calibration, calibration due date or end of the start-up settle
// (Options.RestartSettle) falls within
// IdleTickEvery + TickEvery. Otherwise the Core ticks every TickEvery, so
// each timer is still acted on at most TickEvery after it runs out. Fewer
// wake-ups are what an idle agent costs; 500 ms keeps the core's loop age
// (hazmon_core_loop_age_seconds) well under the 1 s of the README's alert.
const IdleTickEvery = 500 * time.Millisecond

// dueBound is a lower bound on when something timed can next change
// without a reading: Tick finds nothing to do before at. A zero at means
// nothing is timed; known is false until a Tick has computed it (a new or
// inheriting engine).
type dueBound struct {
	at    time.Time
	known bool
}

// lower moves the bound back to t if t is earlier (a zero t is no timer).
func (b *dueBound) lower(t time.Time) { b.at = earliest(b.at, t) }

// earliest returns the earlier of a and b, a zero time counting as never.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// due returns the earliest time at which Tick can change s without a
// reading (zero: never): the stale deadline, the end of an on-delay, of a
// fault lockout's stable period or of a calibration. A faulty sensor has
// only the last: a reading, not time, ends a fault.
func (s *sensorState) due(now time.Time) time.Time {
	var t time.Time
	if now.Before(s.calUntil) {
		t = s.calUntil
	}
	if s.faulty {
		return t
	}
	if s.staleAfter > 0 && !s.lastSeen.IsZero() {
		t = earliest(t, s.lastSeen.Add(s.staleAfter))
	}
	if s.lockout {
		t = earliest(t, s.validSince.Add(s.unlockAfter))
	}
	for ri := range s.rules {
		if rs := &s.rules[ri]; rs.pending && !rs.active {
			t = earliest(t, rs.pendingSince.Add(rs.rule.For))
		}
	}
	return t
}

// NextDue returns a lower bound on when Tick can next change anything
// without a reading (zero: nothing is timed) and whether it is known: it is
// not after NewEngine or Inherit until the first Tick. Apply and
// SetCalibrating only move it earlier; Tick recomputes it.
func (e *Engine) NextDue() (at time.Time, known bool) { return e.due.at, e.due.known }

// calibrationNext recomputes when the next calibration due warning or
// overdue alarm falls (checkCalibration calls it on every tick).
func (c *Core) calibrationNext() {
	var t time.Time
	for _, d := range c.st.due {
		if !d.warned {
			t = earliest(t, d.due.Add(-CalibrationWarnBefore))
		}
		if !d.overdue {
			t = earliest(t, d.due)
		}
	}
	c.st.calNext = dueBound{at: t, known: true}
}

// fastTicks reports whether the loop must tick every TickEvery rather than
// every IdleTickEvery (see IdleTickEvery for when): an output or a
// calibration period makes it tick fast throughout, a deadline only when
// it is near, and an unknown bound (a new, inheriting or recalibrated
// engine, new calibration due dates) until the next tick computes it.
func (c *Core) fastTicks(now time.Time) bool {
	if len(c.st.outs) > 0 || len(c.st.calUntil) > 0 {
		return true
	}
	at, known := c.st.engine.NextDue()
	if !known || !c.st.calNext.known {
		return true
	}
	at = earliest(at, c.st.calNext.at)
	if !c.st.settled {
		at = earliest(at, c.st.start.Add(c.opts.RestartSettle))
	}
	return !at.IsZero() && at.Sub(now) < IdleTickEvery+TickEvery
}
