package safety

import "time"

// IdleTickEvery is how often the Core advances its timers when none of them
// can come due sooner: no calibration period is running, and no on-delay,
// fault unlock, stale deadline, end of calibration, calibration due date,
// end of the start-up settle (Options.RestartSettle) or of the start-up
// hold (Options.HoldUntil), and no output's heartbeat, unconfirmed cut
// (MaxCutoffDelay), feed timeout or end of test falls within
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

// due returns the earliest time at which tick can change o without an
// observation or a reading (zero: never): its next heartbeat, the end of
// the confirmation window of a cut its lane has not confirmed, the end of
// its feed timeout (now while checkFeed has something to do at once: a
// contradiction not yet timed, an abnormal feed that agrees again) and the
// end of an output test. It follows tick's checks (outputs.go, feed.go).
func (o *outState) due(now time.Time) time.Time {
	var t time.Time
	if o.spec.Heartbeat > 0 {
		t = o.lastBeat.Add(o.spec.Heartbeat)
	}
	if o.cut && !o.unconfirmed && o.confirmedGen != o.gen {
		t = earliest(t, o.sentAt.Add(MaxCutoffDelay))
	}
	if !o.testUntil.IsZero() {
		t = earliest(t, o.testUntil)
	}
	if f := &o.feed; o.spec.Feed != "" && f.seen && f.valid {
		switch agrees := f.present == !o.cut; {
		case agrees && f.abnormal, !agrees && f.inconsistentSince.IsZero():
			t = earliest(t, now)
		case !agrees && !f.abnormal:
			from := f.inconsistentSince
			if o.changedAt.After(from) {
				from = o.changedAt
			}
			t = earliest(t, from.Add(o.spec.FeedTimeout))
		}
	}
	return t
}

// fastTicks reports whether the loop must tick every TickEvery rather than
// every IdleTickEvery (see IdleTickEvery for when): a calibration period
// makes it tick fast throughout, a deadline only when it is near, and an
// unknown bound (a new, inheriting or recalibrated engine, new calibration
// due dates) until the next tick computes it.
func (c *Core) fastTicks(now time.Time) bool {
	if len(c.st.calUntil) > 0 {
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
	if now.Before(c.opts.HoldUntil) {
		at = earliest(at, c.opts.HoldUntil)
	}
	for _, o := range c.st.outs {
		at = earliest(at, o.due(now))
	}
	return !at.IsZero() && at.Sub(now) < IdleTickEvery+TickEvery
}

// nextTick returns when the next tick falls after a step at now: the first
// instant after now on the TickEvery grid from tickBase while fastTicks
// holds, on the IdleTickEvery grid otherwise (IdleTickEvery is a multiple
// of TickEvery, so both tickers fire then). A clock stepped back behind
// the grid's origin moves the origin to now.
func (c *Core) nextTick(now time.Time) time.Time {
	if now.Before(c.st.tickBase) {
		c.st.tickBase = now
	}
	period := IdleTickEvery
	if c.st.fast {
		period = TickEvery
	}
	return c.gridFloor(now, period).Add(period)
}

// onGrid returns the last instant of the TickEvery grid from tickBase at
// or before now (now itself before the grid's origin).
func (c *Core) onGrid(now time.Time) time.Time {
	if now.Before(c.st.tickBase) {
		return now
	}
	return c.gridFloor(now, TickEvery)
}

// gridFloor returns the last instant tickBase + k x period at or before
// now (now not before tickBase).
func (c *Core) gridFloor(now time.Time, period time.Duration) time.Time {
	return c.st.tickBase.Add(now.Sub(c.st.tickBase) / period * period)
}
