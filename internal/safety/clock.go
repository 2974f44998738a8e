package safety

import "time"

// Clock is the Core's only source of time: Now stamps every decision and
// NewTicker paces the loop. Production uses RealClock; tests a fake that
// they advance by hand.
type Clock interface {
	Now() time.Time
	NewTicker(d time.Duration) Ticker
}

// Ticker is the part of *time.Ticker the Core uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// RealClock is the wall clock (with Go's monotonic reading).
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTicker returns a time.Ticker.
func (RealClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }
