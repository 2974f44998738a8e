package stats

import (
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// OutputTotals are an output's running totals since the agent started
// (the safety core's read-back): the window's figures are their growth.
type OutputTotals struct {
	CutS float64
	Cuts int
}

// Aggregator builds the statistics of the current window.
type Aggregator struct {
	interval time.Duration
	w        Window
	outStart map[string]OutputTotals // totals at the window's start
	outLast  map[string]OutputTotals // latest totals seen
}

// New returns an Aggregator of windows of interval (0: DefaultInterval)
// for sensors and outputs, whose first window is the one holding now.
func New(interval time.Duration, sensors []SensorSpec, outputs []string, now time.Time) *Aggregator {
	if interval <= 0 {
		interval = DefaultInterval
	}
	a := &Aggregator{interval: interval, outStart: map[string]OutputTotals{}, outLast: map[string]OutputTotals{}}
	a.w = a.window(now)
	a.w.Partial = now.After(a.w.From) // started inside it
	for _, s := range sensors {
		a.w.Sensors[s.ID] = &Sensor{Analog: s.Analog, lastAt: now}
	}
	for _, o := range outputs {
		a.outStart[o], a.outLast[o] = OutputTotals{}, OutputTotals{}
	}
	return a
}

// window returns the empty window holding t.
func (a *Aggregator) window(t time.Time) Window {
	from := t.Truncate(a.interval)
	return Window{From: from, To: from.Add(a.interval), Sensors: map[string]*Sensor{}, Outputs: map[string]Output{}, Alarms: map[string]int{}}
}

// Interval returns the window length.
func (a *Aggregator) Interval() time.Duration { return a.interval }

// Current returns the window being built (do not modify).
func (a *Aggregator) Current() *Window { return &a.w }

// Reading adds one evaluated reading (its Status set by the rules). A
// reading of a sensor not configured is ignored. Call Tick with the
// reading's time first, so that a reading of the next window closes this
// one rather than being counted in it.
func (a *Aggregator) Reading(r reading.Reading) {
	s := a.w.Sensors[r.Sensor]
	if s == nil {
		return
	}
	s.advance(r.Time)
	s.lastStatus, s.statusKnown = r.Status, true
	if !r.Valid() {
		s.Faults++
		return
	}
	if !s.Analog {
		return
	}
	if s.Count == 0 || r.Value > s.Max {
		s.Max, s.MaxAt = r.Value, r.Time
	}
	if s.Count == 0 || r.Value < s.Min {
		s.Min, s.MinAt = r.Value, r.Time
	}
	s.Sum += r.Value
	s.Count++
}

// advance counts the time from the last reading to t in the last status.
func (s *Sensor) advance(t time.Time) {
	if s.statusKnown && t.After(s.lastAt) {
		s.StatusS[statusIndex(s.lastStatus)] += t.Sub(s.lastAt).Seconds()
	}
	if t.After(s.lastAt) {
		s.lastAt = t
	}
}

// Alarm counts a raised alarm of level.
func (a *Aggregator) Alarm(level string) { a.w.Alarms[level]++ }

// Outputs records the outputs' running totals (the safety core's snapshot).
func (a *Aggregator) Outputs(totals map[string]OutputTotals) {
	for name, t := range totals {
		if _, ok := a.outStart[name]; !ok {
			a.outStart[name] = t
		}
		a.outLast[name] = t
	}
}

// Due reports whether the window ends by t (Tick(t) would close it).
func (a *Aggregator) Due(t time.Time) bool { return !t.Before(a.w.To) }

// Tick closes the window if now is past its end and returns it (once);
// the next window starts at the boundary, carrying each sensor's status.
// If the clock jumped past several windows, the empty ones between are
// skipped and the next is marked partial.
func (a *Aggregator) Tick(now time.Time) (Window, bool) {
	if now.Before(a.w.To) {
		return Window{}, false
	}
	done := a.w
	for name, s := range done.Sensors {
		s.advance(done.To)
		_ = name
	}
	for name, last := range a.outLast {
		start := a.outStart[name]
		done.Outputs[name] = Output{CutS: last.CutS - start.CutS, Cuts: last.Cuts - start.Cuts}
		a.outStart[name] = last
	}
	next := a.window(now)
	next.Partial = !next.From.Equal(done.To) // windows were skipped: the clock jumped or the agent stalled
	for id, s := range done.Sensors {
		ns := &Sensor{Analog: s.Analog, statusKnown: s.statusKnown, lastStatus: s.lastStatus, lastAt: next.From}
		next.Sensors[id] = ns
	}
	a.w = next
	return done, true
}
