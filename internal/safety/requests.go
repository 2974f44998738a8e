package safety

import (
	"context"
	"fmt"
	"time"
)

// request is a function run on the Core's goroutine (a technician's act or
// a snapshot), so that nothing but that goroutine ever touches its state.
type request struct {
	fn   func(now time.Time)
	done chan struct{}
}

// serve runs a request between two steps: everything offered before it is
// evaluated first (so a request is also a barrier), and what it changed
// goes out at once.
func (c *Core) serve(r request) {
	c.step()
	r.fn(c.clock.Now())
	close(r.done)
	c.step()
}

// do runs fn on the Core's goroutine and waits for it, or for ctx.
func (c *Core) do(ctx context.Context, fn func(now time.Time)) error {
	r := request{fn: fn, done: make(chan struct{})}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("safety core busy: %w", ctx.Err())
	case <-c.done:
		return ErrStopped
	}
	select {
	case <-r.done:
		return nil
	case <-c.done:
		return ErrStopped
	}
}

// MaxTest bounds an output test (Core.TestCut).
const MaxTest = 10 * time.Minute

// TestCut cuts output name for an output test until d has passed (at most
// MaxTest) or Release is called, whichever comes first; the Core itself
// ends the test, so a technician's lost connection cannot leave an output
// held. A test may only cut: it refuses an output that is cut already (by
// its rules, start-up or a hold), since energising power against a rule is
// never a test.
func (c *Core) TestCut(ctx context.Context, name string, d time.Duration) error {
	if d <= 0 || d > MaxTest {
		return fmt.Errorf("test duration %s (want 0 < d <= %s)", d, MaxTest)
	}
	var err error
	if e := c.do(ctx, func(now time.Time) {
		o := c.st.byName[name]
		switch {
		case o == nil:
			err = fmt.Errorf("output %s is not configured", name)
		case now.Before(o.testUntil):
			err = fmt.Errorf("output %s is already under test", name)
		case o.cut:
			_, why := c.wantCut(o, now)
			err = fmt.Errorf("output %s is cut (%s): a test only cuts power that is on", name, why)
		default:
			o.testUntil = now.Add(d)
			c.event(Event{Type: EventOutputTestStart, Time: now, Output: name, Detail: "cut for " + d.String()})
		}
	}); e != nil {
		return e
	}
	return err
}

// ReleaseTest ends an output test early; the output goes back to what the
// rules and holds demand.
func (c *Core) ReleaseTest(ctx context.Context, name string) error {
	return c.do(ctx, func(now time.Time) {
		if o := c.st.byName[name]; o != nil && !o.testUntil.IsZero() {
			o.testUntil = time.Time{}
			c.event(Event{Type: EventOutputTestEnd, Time: now, Output: name})
		}
	})
}

// Calibrate flags sensor as under calibration until until (a zero or past
// time ends it now): its readings say calibrating and its alarms carry
// Calibration, while rules and outputs act as usual (the cut-off test is
// part of calibration). It fails for a sensor without rules.
func (c *Core) Calibrate(ctx context.Context, sensor string, until time.Time) error {
	var err error
	if e := c.do(ctx, func(now time.Time) {
		if !c.st.engine.SetCalibrating(sensor, until) {
			err = fmt.Errorf("sensor %s has no safety rules to calibrate", sensor)
			return
		}
		if until.After(now) {
			c.st.calUntil[sensor] = until
			c.event(Event{Type: EventCalibrationStart, Time: now, Sensor: sensor, Detail: "until " + until.Format(time.RFC3339)})
		} else if _, on := c.st.calUntil[sensor]; on {
			delete(c.st.calUntil, sensor)
			c.event(Event{Type: EventCalibrationStop, Time: now, Sensor: sensor, Detail: "stopped by hand"})
		}
	}); e != nil {
		return e
	}
	return err
}

// Restore lifts what only a technician may lift on output name: the latch
// of an output found cut by something else (LevelOutputMismatch) and the
// holds a reload left. The rules still apply: an output they demand cut
// stays cut. It reports what was lifted, or an error if nothing held it.
// The act is recorded as an EventOutputRestore.
func (c *Core) Restore(ctx context.Context, name string) (lifted string, err error) {
	if e := c.do(ctx, func(now time.Time) {
		o := c.st.byName[name]
		if o == nil {
			err = fmt.Errorf("output %s is not configured", name)
			return
		}
		switch {
		case o.latched != "":
			lifted = "mismatch latch: " + o.latched
			o.latched = ""
			c.emit(Alarm{Sensor: name, Level: LevelOutputMismatch, State: StateCleared, Time: now,
				Outputs: []string{name}, Reason: ReasonRestored})
		case len(o.legacy) > 0:
			lifted = o.legacy[0].describe()
		default:
			_, why := c.wantCut(o, now)
			if why == "" {
				why = "it is on"
			}
			err = fmt.Errorf("output %s is not held by a latch or a reload (%s): nothing to restore", name, why)
			return
		}
		o.legacy = nil
		c.event(Event{Type: EventOutputRestore, Time: now, Output: name, Detail: lifted})
	}); e != nil {
		return "", e
	}
	return lifted, err
}
