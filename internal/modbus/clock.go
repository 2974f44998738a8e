package modbus

import "time"

// Clock is a Poller's time source: the schedule's grid, the slave
// backoff, the busy waits, the reconnect backoff and the liveness stamps
// all read it. Options.Clock nil is the wall clock; tests inject a fake.
// The bus transports keep their own (real) timeouts.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d after now.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	// C delivers the time when the timer fires.
	C() <-chan time.Time
	// Reset makes the timer fire d after now (stopping it first).
	Reset(d time.Duration)
	// Stop stops the timer; it does not fire afterwards.
	Stop()
}

// wallClock is the Clock of time.Now and time.Timer.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) NewTimer(d time.Duration) Timer { return wallTimer{time.NewTimer(d)} }

type wallTimer struct{ t *time.Timer }

func (w wallTimer) C() <-chan time.Time { return w.t.C }

// Reset relies on Go 1.23 timers: no stale value is left in C.
func (w wallTimer) Reset(d time.Duration) { w.t.Reset(d) }

func (w wallTimer) Stop() { w.t.Stop() }
