package stats

import (
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// Saved is the current window as kept in a state record, so that a
// restart inside the window carries on with it (and marks it partial).
type Saved struct {
	Interval time.Duration           `json:"interval"`
	From     time.Time               `json:"from"`
	Partial  bool                    `json:"partial"`
	SavedAt  time.Time               `json:"saved_at"`
	Sensors  map[string]SavedSensor  `json:"sensors"`
	Alarms   map[string]int          `json:"alarms"`
	Outputs  map[string]OutputTotals `json:"outputs"` // each output's growth in the window so far
}

// SavedSensor is one sensor of a Saved window.
type SavedSensor struct {
	Count   int                `json:"count"`
	Sum     float64            `json:"sum"`
	Max     float64            `json:"max"`
	Min     float64            `json:"min"`
	MaxAt   time.Time          `json:"max_at"`
	MinAt   time.Time          `json:"min_at"`
	Faults  int                `json:"faults"`
	StatusS map[string]float64 `json:"status_s"`
}

// Save returns the current window, counted up to now, for a state record.
func (a *Aggregator) Save(now time.Time) Saved {
	sv := Saved{Interval: a.interval, From: a.w.From, Partial: a.w.Partial, SavedAt: now,
		Sensors: map[string]SavedSensor{}, Alarms: map[string]int{}, Outputs: map[string]OutputTotals{}}
	for id, s := range a.w.Sensors {
		c := *s
		c.advance(now)
		sv.Sensors[id] = SavedSensor{Count: c.Count, Sum: c.Sum, Max: c.Max, Min: c.Min, MaxAt: c.MaxAt, MinAt: c.MinAt,
			Faults: c.Faults, StatusS: c.Seconds()}
	}
	for l, n := range a.w.Alarms {
		sv.Alarms[l] = n
	}
	for name, last := range a.outLast {
		start := a.outStart[name]
		sv.Outputs[name] = OutputTotals{CutS: last.CutS - start.CutS, Cuts: last.Cuts - start.Cuts}
	}
	return sv
}

// Restore carries a saved window on when it is the window holding now
// (marked partial: the agent was not running between SavedAt and now), and
// returns it closed otherwise (a window the last run did not finish, to be
// published as partial). The restored outputs' growth is added on top of
// the new run's totals (which start again at 0).
func (a *Aggregator) Restore(sv Saved, now time.Time) (closed Window, ok bool) {
	if sv.Interval != a.interval || sv.From.IsZero() {
		return Window{}, false
	}
	w := Window{From: sv.From, To: sv.From.Add(sv.Interval), Partial: true, Sensors: map[string]*Sensor{},
		Outputs: map[string]Output{}, Alarms: map[string]int{}}
	for id, ss := range sv.Sensors {
		cur := a.w.Sensors[id]
		if cur == nil {
			continue
		}
		s := &Sensor{Analog: cur.Analog, Count: ss.Count, Sum: ss.Sum, Max: ss.Max, Min: ss.Min, MaxAt: ss.MaxAt,
			MinAt: ss.MinAt, Faults: ss.Faults, lastAt: now}
		for st, v := range ss.StatusS {
			s.StatusS[statusIndex(reading.Status(st))] += v
		}
		w.Sensors[id] = s
	}
	for l, n := range sv.Alarms {
		w.Alarms[l] = n
	}
	if !w.From.Equal(a.w.From) { // not the current window: hand it back closed
		for name, o := range sv.Outputs {
			w.Outputs[name] = Output(o)
		}
		return w, true
	}
	for id, s := range a.w.Sensors {
		if _, ok := w.Sensors[id]; !ok {
			w.Sensors[id] = s
		}
	}
	for name, o := range sv.Outputs {
		st := a.outStart[name]
		a.outStart[name] = OutputTotals{CutS: st.CutS - o.CutS, Cuts: st.Cuts - o.Cuts}
	}
	a.w = w
	return Window{}, false
}
