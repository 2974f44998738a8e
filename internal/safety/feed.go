package safety

import (
	"fmt"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// feedState is the feed check of one output (馈电, domain notes §4): the
// feed sensor shows whether power is really present on the controlled
// circuit; feed abnormal is raised when it contradicts the command for
// longer than the output's feed timeout.
type feedState struct {
	seen, valid, present bool
	inconsistentSince    time.Time // zero while the feed agrees with the command
	abnormal             bool
	reason               string
}

// feedReading records a reading of a feed sensor (value != 0: power
// present; a fault suspends the check) and evaluates the outputs it feeds.
func (c *Core) feedReading(r reading.Reading, now time.Time) {
	for _, o := range c.st.byFeed[r.Sensor] {
		f := &o.feed
		f.seen, f.valid = true, r.Valid()
		if f.valid {
			f.present = r.Value != 0
		}
		c.checkFeed(o, now)
	}
}

// feedCommandChanged restarts the feed timeout when the command changes:
// the last feed reading may contradict the new command from now on.
func (o *outState) feedCommandChanged(cut bool, now time.Time) {
	f := &o.feed
	f.inconsistentSince = time.Time{}
	if f.seen && f.valid && f.present == cut {
		f.inconsistentSince = now
	}
}

// checkFeed raises feed abnormal once the feed has contradicted the
// command for the feed timeout (counted from the later of the start of the
// contradiction and the last command change) and clears it as soon as they
// agree. While the feed is invalid the check is suspended.
func (c *Core) checkFeed(o *outState, now time.Time) {
	f := &o.feed
	if o.spec.Feed == "" || !f.seen || !f.valid {
		f.inconsistentSince = time.Time{}
		return
	}
	alarm := Alarm{Sensor: o.spec.Feed, Level: LevelFeedAbnormal, Time: now, Outputs: []string{o.spec.Name}}
	if f.present == !o.cut {
		f.inconsistentSince = time.Time{}
		if f.abnormal {
			f.abnormal, f.reason = false, ""
			alarm.State, alarm.Reason = StateCleared, fmt.Sprintf("feed %s agrees with output %s again", o.spec.Feed, o.spec.Name)
			c.emit(alarm)
		}
		return
	}
	if f.inconsistentSince.IsZero() {
		f.inconsistentSince = now
	}
	from := f.inconsistentSince
	if o.changedAt.After(from) {
		from = o.changedAt
	}
	if f.abnormal || now.Sub(from) < o.spec.FeedTimeout {
		return
	}
	if o.cut {
		f.reason = fmt.Sprintf("power still present on feed %s %s after output %s was cut", o.spec.Feed, o.spec.FeedTimeout, o.spec.Name)
	} else {
		f.reason = fmt.Sprintf("no power on feed %s while output %s allows it, for %s", o.spec.Feed, o.spec.Name, o.spec.FeedTimeout)
	}
	f.abnormal = true
	alarm.State, alarm.Reason = StateRaised, f.reason
	c.emit(alarm)
}
