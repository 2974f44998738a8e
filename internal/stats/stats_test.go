package stats

import (
	"math"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC) // a 5-minute boundary

func rd(id string, v float64, at time.Time, st reading.Status) reading.Reading {
	return reading.Reading{Sensor: id, Value: v, Time: at, Status: st}
}

// TestAggregator_Window: a 5-minute window aligned to the wall clock holds
// count, mean, extremes with their times, faults and the seconds in each
// status; the output's cut seconds and cuts are the growth of its totals;
// alarms are counted per level; the next window carries the status on.
func TestAggregator_Window(t *testing.T) {
	a := New(5*time.Minute, []SensorSpec{{ID: "CH4", Analog: true}, {ID: "FAN"}}, []string{"K1"}, t0)
	if w := a.Current(); !w.From.Equal(t0) || !w.To.Equal(t0.Add(5*time.Minute)) || w.Partial {
		t.Fatalf("window %v..%v partial=%v", w.From, w.To, w.Partial)
	}
	a.Outputs(map[string]OutputTotals{"K1": {}})
	a.Reading(rd("CH4", 0.5, t0, reading.StatusNormal))
	a.Reading(rd("CH4", 1.6, t0.Add(100*time.Second), reading.StatusCutoff))
	a.Alarm("alarm")
	a.Alarm("cutoff")
	a.Reading(reading.Reading{Sensor: "CH4", Time: t0.Add(160 * time.Second), Status: reading.StatusFault, Err: "timeout"})
	a.Reading(rd("CH4", 0.3, t0.Add(200*time.Second), reading.StatusNormal))
	a.Reading(rd("FAN", 1, t0, reading.StatusNormal))
	a.Outputs(map[string]OutputTotals{"K1": {CutS: 60, Cuts: 1}})
	if _, done := a.Tick(t0.Add(299 * time.Second)); done {
		t.Fatal("window closed early")
	}
	w, done := a.Tick(t0.Add(300 * time.Second))
	if !done {
		t.Fatal("window not closed at its end")
	}
	ch4 := w.Sensors["CH4"]
	if ch4.Count != 3 || ch4.Faults != 1 || ch4.Max != 1.6 || !ch4.MaxAt.Equal(t0.Add(100*time.Second)) ||
		ch4.Min != 0.3 || math.Abs(ch4.Mean()-0.8) > 1e-9 {
		t.Fatalf("CH4 %+v mean %v", ch4, ch4.Mean())
	}
	secs := ch4.Seconds()
	if secs["normal"] != 200 || secs["cutoff"] != 60 || secs["fault"] != 40 {
		t.Fatalf("CH4 status seconds %v, want normal 200, cutoff 60, fault 40", secs)
	}
	if fan := w.Sensors["FAN"]; fan.Count != 0 || fan.Seconds()["normal"] != 300 {
		t.Fatalf("switch FAN %+v %v", fan, fan.Seconds())
	}
	if o := w.Outputs["K1"]; o.CutS != 60 || o.Cuts != 1 {
		t.Fatalf("K1 %+v, want 60 s and 1 cut in the window", o)
	}
	if w.Alarms["cutoff"] != 1 || w.Alarms["alarm"] != 1 {
		t.Fatalf("alarms %v", w.Alarms)
	}
	next := a.Current()
	if !next.From.Equal(w.To) || next.Partial {
		t.Fatalf("next window %v partial=%v", next.From, next.Partial)
	}
	w2, _ := a.Tick(t0.Add(600 * time.Second))
	if got := w2.Sensors["CH4"].Seconds()["normal"]; got != 300 {
		t.Fatalf("status carried into the next window: normal %v s, want 300", got)
	}
}

// TestAggregator_PartialWindows: a start inside a window, and a clock jump
// past whole windows, mark the window partial.
func TestAggregator_PartialWindows(t *testing.T) {
	a := New(5*time.Minute, []SensorSpec{{ID: "CH4", Analog: true}}, nil, t0.Add(42*time.Second))
	if !a.Current().Partial {
		t.Fatal("a window the agent started inside is not partial")
	}
	a.Tick(t0.Add(5 * time.Minute))
	if a.Current().Partial {
		t.Fatal("a whole window is partial")
	}
	a.Tick(t0.Add(time.Hour))
	if !a.Current().Partial {
		t.Fatal("the window after a jump of the clock is not partial")
	}
}

// TestAggregator_RestartInsideWindow: a window saved before a restart and
// restored inside it carries its counts on, flagged partial; one that
// ended meanwhile comes back closed and partial.
func TestAggregator_RestartInsideWindow(t *testing.T) {
	a := New(5*time.Minute, []SensorSpec{{ID: "CH4", Analog: true}}, []string{"K1"}, t0)
	a.Reading(rd("CH4", 2.0, t0.Add(10*time.Second), reading.StatusCutoff))
	a.Outputs(map[string]OutputTotals{"K1": {CutS: 30, Cuts: 1}})
	saved := a.Save(t0.Add(40 * time.Second))

	b := New(5*time.Minute, []SensorSpec{{ID: "CH4", Analog: true}}, []string{"K1"}, t0.Add(60*time.Second))
	if _, closed := b.Restore(saved, t0.Add(60*time.Second)); closed {
		t.Fatal("the current window came back closed")
	}
	b.Reading(rd("CH4", 0.5, t0.Add(70*time.Second), reading.StatusNormal))
	b.Outputs(map[string]OutputTotals{"K1": {CutS: 5, Cuts: 0}})
	w, _ := b.Tick(t0.Add(5 * time.Minute))
	if !w.Partial || w.Sensors["CH4"].Count != 2 || w.Sensors["CH4"].Max != 2.0 {
		t.Fatalf("restored window %+v partial=%v", w.Sensors["CH4"], w.Partial)
	}
	if o := w.Outputs["K1"]; o.CutS != 35 || o.Cuts != 1 {
		t.Fatalf("K1 over the restart %+v, want 35 s (30 before + 5 after), 1 cut", o)
	}

	c := New(5*time.Minute, []SensorSpec{{ID: "CH4", Analog: true}}, nil, t0.Add(7*time.Minute))
	old, closed := c.Restore(saved, t0.Add(7*time.Minute))
	if !closed || !old.Partial || !old.From.Equal(t0) || old.Sensors["CH4"].Count != 1 {
		t.Fatalf("a window that ended during the stop: closed=%v %+v", closed, old)
	}
}

// TestAggregator_NoAllocPerReading: once each status has been seen,
// a reading allocates nothing.
func TestAggregator_NoAllocPerReading(t *testing.T) {
	a := New(5*time.Minute, []SensorSpec{{ID: "CH4", Analog: true}}, nil, t0)
	at := t0
	r := rd("CH4", 0.5, at, reading.StatusNormal)
	allocs := testing.AllocsPerRun(1000, func() {
		at = at.Add(time.Millisecond)
		r.Time = at
		a.Reading(r)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per reading", allocs)
	}
}
