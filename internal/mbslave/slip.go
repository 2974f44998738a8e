package mbslave

import (
	"sync/atomic"
	"time"
)

// slipMeter keeps the largest overshoot of the timings the slave itself
// plays (a reply's turnaround and pacing, a duplicate's gap): how far its
// goroutine overslept on a loaded host. Safe for concurrent use.
type slipMeter struct{ max atomic.Int64 }

func (m *slipMeter) note(elapsed, planned time.Duration) {
	d := int64(elapsed - planned)
	for {
		cur := m.max.Load()
		if d <= cur || m.max.CompareAndSwap(cur, d) {
			return
		}
	}
}

// Slip returns the largest overshoot, since the last ResetSlip, of the
// timings the slave plays itself: on RTU the time from a request's
// decoding to its reply being written (turnaround, Delay, line pacing at
// the baud rate, Split) beyond what they add up to; on RTU and TCP a
// Duplicate's gap beyond what was set. On an idle host it is well under a millisecond; a test
// whose premise is a timing (a copy within the master's settle time)
// checks it before taking a failure for the master's.
func (b *Bank) Slip() time.Duration { return time.Duration(b.slip.max.Load()) }

// ResetSlip starts a new Slip measurement.
func (b *Bank) ResetSlip() { b.slip.max.Store(0) }
