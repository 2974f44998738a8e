package safety

import (
	"context"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// Snapshot is the Core's state at one moment, for status displays.
type Snapshot struct {
	Time    time.Time
	Sensors map[string]reading.Status // each sensor with rules: its status
	Outputs []OutputState
	Alarms  []Alarm // active
	// HoldUntil / HoldReason: the start-up hold after an unclean stop.
	HoldUntil  time.Time
	HoldReason string
	// Lost readings and alarms/events the Outbox dropped because it was full.
	LostReadings, LostUrgent uint64
}

// OutputState is one output in a Snapshot.
type OutputState struct {
	Name string
	// Cut is the commanded state; Why the first reason it is cut ("rules",
	// a hold's reason) or "" when power is allowed.
	Cut       bool
	Why       string
	ChangedAt time.Time
	Gen       uint64
	// Confirmed: the lane confirmed the current command (GPIO written,
	// coil read back). Known/Energised: the physical state as last seen.
	Confirmed    bool
	Known        bool
	Energised    bool
	LastError    string
	Latched      string // LevelOutputMismatch latch reason, "" if none
	Testing      bool
	Feed         string
	FeedValid    bool
	FeedPresent  bool
	FeedAbnormal bool
	FeedReason   string
	// CutS and Cuts: seconds the output has been physically cut (read
	// back) since the Core started, and how many times it was cut.
	CutS float64
	Cuts int
}

// Snapshot returns the Core's state, taken on its goroutine.
func (c *Core) Snapshot(ctx context.Context) (Snapshot, error) {
	return c.snapshot(ctx, true)
}

// OutputsSnapshot is Snapshot without Sensors and Alarms (nil): what the
// once-a-second readers of the outputs need, without a map of every
// sensor built on the Core's goroutine each time.
func (c *Core) OutputsSnapshot(ctx context.Context) (Snapshot, error) {
	return c.snapshot(ctx, false)
}

func (c *Core) snapshot(ctx context.Context, whole bool) (Snapshot, error) {
	var s Snapshot
	err := c.do(ctx, func(now time.Time) {
		s.Time, s.HoldUntil, s.HoldReason = now, c.opts.HoldUntil, c.opts.HoldReason
		if whole {
			s.Sensors = make(map[string]reading.Status, len(c.st.engine.sensors))
			for _, ss := range c.st.engine.sensors {
				s.Sensors[ss.id] = ss.status
			}
			s.Alarms = c.st.alarms.list()
		}
		for _, o := range c.st.outs {
			_, why := c.wantCut(o, now)
			s.Outputs = append(s.Outputs, OutputState{
				Name: o.spec.Name, Cut: o.cut, Why: why, ChangedAt: o.changedAt, Gen: o.gen,
				Confirmed: o.confirmedGen == o.gen, Known: o.obs.Known, Energised: o.obs.Energised,
				LastError: o.obs.Err, Latched: o.latched, Testing: now.Before(o.testUntil),
				Feed: o.spec.Feed, FeedValid: o.feed.seen && o.feed.valid, FeedPresent: o.feed.present,
				FeedAbnormal: o.feed.abnormal, FeedReason: o.feed.reason,
				CutS: o.cutTotal(now).Seconds(), Cuts: o.cuts,
			})
		}
	})
	s.LostReadings, s.LostUrgent = c.out.Lost()
	return s, err
}
