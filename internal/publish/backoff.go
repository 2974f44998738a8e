package publish

import "time"

// backoff is the wait before a reconnect attempt: capped exponential with
// jitter. Each wait is drawn from [ceiling/2, ceiling]; the ceiling starts
// at lo (so the first retry after a loss comes within lo), doubles after
// each attempt and never exceeds hi. reset (a connection came up) starts
// again from lo.
type backoff struct {
	lo, hi  time.Duration
	ceiling time.Duration
	// rnd returns a uniform random number in [0, n) (rand.Int64N).
	rnd func(n int64) int64
}

// newBackoff returns a backoff from lo up to hi (lo above hi is hi).
func newBackoff(lo, hi time.Duration, rnd func(int64) int64) backoff {
	hi = max(hi, time.Millisecond)
	lo = min(max(lo, time.Millisecond), hi)
	return backoff{lo: lo, hi: hi, ceiling: lo, rnd: rnd}
}

// next returns the wait before the next attempt and raises the ceiling.
func (b *backoff) next() time.Duration {
	c := b.ceiling
	b.ceiling = min(2*b.ceiling, b.hi)
	return c/2 + time.Duration(b.rnd(int64(c/2)+1))
}

// reset makes the next wait at most lo again.
func (b *backoff) reset() { b.ceiling = b.lo }
