package modbus

import (
	"math"
	"time"

	"github.com/hazmon/hazmon/internal/config"
)

// Scheduler settings.
const (
	// LoadTarget is the share of the bus time the polls may fill before
	// the bus counts as over-subscribed; the rest is headroom for retries
	// and queued writes (breaker outputs).
	LoadTarget = 0.9
	// ReplanEvery is how often the schedule's load is re-estimated.
	ReplanEvery = time.Second
	// OverloadWarnEvery rate-limits the over-subscription warning.
	OverloadWarnEvery = time.Minute
	// MaxStretch bounds how far a read that is not on time is slowed down.
	MaxStretch = 1000
	// MaxStretchedPeriod bounds a stretched read's period: the polling
	// cycle of the whole monitoring system must stay within 30 s
	// (GB 50581-2010 §3.1.4), so no sensor is read less often than that
	// (or its own interval, if longer).
	MaxStretchedPeriod = config.MaxPollPeriod
)

// The scheduler is pure: it reads and sets the groups' grids and
// stretches at the time it is given, with no clock and no I/O. The Poller
// calls it on the bus goroutine.

// advance moves g to the first tick of its grid after now (every
// stretch-th tick when the bus is over-subscribed) that is at least half
// a step away, and returns how many ticks were skipped because the bus was
// late. A poll served nearly a whole interval late is not followed by
// another within the same moment: two samples of a sensor a millisecond
// apart carry nothing new, share a timestamp on the wire (ms), and take
// bus time from the others.
func advance(g *group, now time.Time) (skipped int64) {
	k := int64(now.Sub(g.start)/g.interval) + 1
	stretch := max(g.stretch, 1)
	if stretch > 1 {
		k = (k + stretch - 1) / stretch * stretch
	}
	step := g.interval * time.Duration(stretch)
	next := g.start.Add(time.Duration(k) * g.interval)
	if next.Sub(now) < step/2 {
		next = next.Add(step)
	}
	skipped = max(int64(next.Sub(g.next)/step)-1, 0)
	g.next = next
	return skipped
}

// nextDue returns the earliest next tick among the reads.
func nextDue(groups []*group) (time.Time, bool) {
	var t time.Time
	for i, g := range groups {
		if i == 0 || g.next.Before(t) {
			t = g.next
		}
	}
	return t, len(groups) > 0
}

// pick returns the most urgent read due at now, or nil: an on-time read
// before any other, then the earliest tick, then the shorter interval,
// then the first configured.
func pick(groups []*group, now time.Time) *group {
	var best *group
	for _, g := range groups {
		if g.next.After(now) {
			continue
		}
		if best == nil || g.onTime && !best.onTime ||
			g.onTime == best.onTime && (g.next.Before(best.next) || g.next.Equal(best.next) && g.interval < best.interval) {
			best = g
		}
	}
	return best
}

// fits reports whether one more transaction of g lasting up to d, started
// at now, ends by the next tick of every on-time read, and, when g is not
// on time itself, of every read: a retry never pushes an on-time read past
// its tick, and a read that is not on time never delays any other.
func fits(groups []*group, g *group, now time.Time, d time.Duration) bool {
	end := now.Add(d)
	for _, h := range groups {
		if g.onTime && !h.onTime {
			continue
		}
		if end.After(h.next) {
			return false
		}
	}
	return true
}

// planned is what plan decided.
type planned struct {
	load       float64 // bus time asked per second of wall time (1 = full)
	onTimeLoad float64 // the on-time reads' share of it
	stretch    int64   // the stretch asked of the reads that are not on time (before each one's cap)
	stretched  int     // sensors polled less often than their interval
}

// plan estimates the bus load of the schedule from the reads' recent
// wire times and, when it is above LoadTarget, stretches the reads that
// are not on time to whole multiples of their interval (at most
// MaxStretch, and at most MaxStretchedPeriod unless the interval is
// longer) so that the on-time reads keep theirs. On-time reads are never
// stretched: when they alone fill the bus they run back to back (their
// late ticks counted in Missed) and the others get the longest stretch.
func plan(groups []*group) planned {
	var pl planned
	var other float64
	for _, g := range groups {
		l := g.cost.Seconds() / g.interval.Seconds()
		if g.onTime {
			pl.onTimeLoad += l
		} else {
			other += l
		}
	}
	pl.load = pl.onTimeLoad + other
	pl.stretch = 1
	if pl.load > LoadTarget {
		pl.stretch = MaxStretch
		if free := LoadTarget - pl.onTimeLoad; free > 0 {
			pl.stretch = min(int64(math.Ceil(other/free)), MaxStretch)
		}
	}
	for _, g := range groups {
		g.stretch = pl.stretch
		if g.onTime {
			g.stretch = 1
		} else if limit := max(1, int64(MaxStretchedPeriod/g.interval)); g.stretch > limit {
			g.stretch = limit
		}
		if g.stretch > 1 {
			pl.stretched += len(g.members)
		}
	}
	return pl
}
