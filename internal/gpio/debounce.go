package gpio

import "time"

// DefaultDebounce is the debounce window of a GPIO input without one
// (config gpio.debounce): long enough for the contact bounce of switches
// and relay contacts (typically 1-5 ms), short against a 1 s poll.
const DefaultDebounce = 10 * time.Millisecond

// Debouncer turns raw samples of a line into debounced level changes. It is
// a pure state machine: the caller feeds it (level, time) samples in time
// order and gets the changes back, so the same input always gives the same
// events. A new level is accepted once it has been stable, without any
// sample of the other level, for the whole window; the change is stamped
// at the time it became stable (the last raw change + window), not at the
// time it was observed. The zero Debouncer is not usable: use NewDebouncer.
type Debouncer struct {
	window time.Duration
	known  bool      // a debounced level exists
	level  bool      // debounced level (raw electrical level, true = high)
	raw    bool      // last raw level seen
	since  time.Time // when raw last changed (or the first sample)
	seen   bool      // at least one sample fed
}

// NewDebouncer returns a debouncer with the given window (<= 0 means
// DefaultDebounce). Until a level has been stable for one window it has no
// debounced level.
func NewDebouncer(window time.Duration) *Debouncer {
	if window <= 0 {
		window = DefaultDebounce
	}
	return &Debouncer{window: window}
}

// Window returns the debounce window.
func (d *Debouncer) Window() time.Duration { return d.window }

// Update feeds the raw level sampled at t. It returns changed = true with
// the new debounced level and the time it became stable when the debounced
// level changed (the first time, when a level first becomes known). A
// sample with a time before the last raw change is treated as taken at it.
func (d *Debouncer) Update(level bool, t time.Time) (newLevel bool, at time.Time, changed bool) {
	if !d.seen || level != d.raw {
		if !d.seen || t.After(d.since) {
			d.since = t
		}
		d.raw, d.seen = level, true
	}
	return d.settle(t)
}

// Edge feeds a transition seen at t (an edge event) after which the line
// reads level. Unlike Update it restarts the stability timer even when
// level equals the last raw level: the line moved in between (a bounce
// faster than the reader), so it has not been stable since before t.
func (d *Debouncer) Edge(level bool, t time.Time) (newLevel bool, at time.Time, changed bool) {
	if !d.seen || t.After(d.since) {
		d.since = t
	}
	d.raw, d.seen = level, true
	return d.settle(t)
}

// Advance tells the debouncer that time t has come with no new sample (the
// raw level is unchanged); it returns a change like Update.
func (d *Debouncer) Advance(t time.Time) (newLevel bool, at time.Time, changed bool) {
	if !d.seen {
		return false, time.Time{}, false
	}
	return d.settle(t)
}

func (d *Debouncer) settle(t time.Time) (bool, time.Time, bool) {
	if d.known && d.raw == d.level {
		return d.level, time.Time{}, false
	}
	stable := d.since.Add(d.window)
	if t.Before(stable) {
		return d.level, time.Time{}, false
	}
	d.level, d.known = d.raw, true
	return d.level, stable, true
}

// Level returns the debounced level and whether one is known yet.
func (d *Debouncer) Level() (level, known bool) { return d.level, d.known }

// Deadline returns when the pending raw level will have been stable for
// the window, and whether a change is pending at all. A caller waiting for
// edges should wake up at the deadline and call Advance.
func (d *Debouncer) Deadline() (time.Time, bool) {
	if !d.seen || (d.known && d.raw == d.level) {
		return time.Time{}, false
	}
	return d.since.Add(d.window), true
}
