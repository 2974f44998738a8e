package safety

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// fakeClock is a Clock the test moves by hand; its tickers fire when it
// passes their next tick.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

type fakeTicker struct {
	c      chan time.Time
	period time.Duration
	next   time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_764_403_200, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTicker(d time.Duration) Ticker {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTicker{c: make(chan time.Time, 1), period: d, next: f.now.Add(d)}
	f.tickers = append(f.tickers, t)
	return t
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }
func (t *fakeTicker) Stop()               {}

// advance moves the clock by d, firing tickers that are due.
func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, t := range f.tickers {
		for !t.next.After(f.now) {
			t.next = t.next.Add(t.period)
			select {
			case t.c <- f.now:
			default:
			}
		}
	}
}

// fakeLane records the commands it gets; with confirm set it reports each
// one done at once, as a healthy GPIO relay would.
type fakeLane struct {
	mu      sync.Mutex
	cmds    []Command
	confirm *Core
}

func (l *fakeLane) Command(c Command) {
	l.mu.Lock()
	l.cmds = append(l.cmds, c)
	core := l.confirm
	l.mu.Unlock()
	if core != nil {
		core.Observe(Observation{Output: c.Output, Gen: c.Gen, Known: true, Energised: !c.Cut, Confirmed: true})
	}
}

// manual stops the lane confirming by itself.
func (l *fakeLane) manual() {
	l.mu.Lock()
	l.confirm = nil
	l.mu.Unlock()
}

func (l *fakeLane) last() (Command, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cmds) == 0 {
		return Command{}, false
	}
	return l.cmds[len(l.cmds)-1], true
}

// rig is a Core under test, running on a fake clock.
type rig struct {
	t     *testing.T
	clk   *fakeClock
	core  *Core
	lanes map[string]*fakeLane
	src   *Source
	items []Item
}

func newRig(t *testing.T, spec Spec, opts Options) *rig {
	t.Helper()
	r := &rig{t: t, clk: newFakeClock(), lanes: map[string]*fakeLane{}}
	opts.Clock = r.clk
	c, err := New(spec, r.laneMap(spec), opts)
	if err != nil {
		t.Fatal(err)
	}
	r.core = c
	for _, l := range r.lanes {
		l.mu.Lock()
		l.confirm = c
		l.mu.Unlock()
		if cmd, ok := l.last(); ok { // the command New sent before the lane knew the Core
			c.Observe(Observation{Output: cmd.Output, Gen: cmd.Gen, Known: true, Energised: !cmd.Cut, Confirmed: true})
		}
	}
	r.src = c.NewSource("test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r
}

func (r *rig) laneMap(spec Spec) map[string]Lane {
	m := map[string]Lane{}
	for _, o := range spec.Outputs {
		l := r.lanes[o.Name]
		if l == nil {
			l = &fakeLane{}
			r.lanes[o.Name] = l
		}
		m[o.Name] = l
	}
	return m
}

// sync waits until the Core has evaluated everything offered so far and
// collects what it put in its Outbox.
func (r *rig) sync() {
	r.t.Helper()
	if _, err := r.core.Snapshot(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.items = r.core.Outbox().Take(r.items)
}

// offer hands a valid reading (at the clock's time) to the Core and syncs.
func (r *rig) offer(sensor string, v float64) {
	r.t.Helper()
	r.src.Offer(reading.Reading{Sensor: sensor, Time: r.clk.Now(), Value: v, Status: reading.StatusNormal})
	r.sync()
}

// advance moves the clock and lets the Core act on it.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	r.clk.advance(d)
	r.sync()
}

// cut reports the last command to output name.
func (r *rig) cut(name string) bool {
	r.t.Helper()
	c, ok := r.lanes[name].last()
	if !ok {
		r.t.Fatalf("output %s never commanded", name)
	}
	return c.Cut
}

// alarms returns the alarms collected so far and forgets them.
func (r *rig) alarms() []Alarm {
	var out []Alarm
	rest := r.items[:0]
	for _, it := range r.items {
		if it.Kind == ItemAlarm {
			out = append(out, it.Alarm)
		} else {
			rest = append(rest, it)
		}
	}
	r.items = rest
	return out
}

// events returns the events collected so far and forgets them.
func (r *rig) events() []Event {
	var out []Event
	rest := r.items[:0]
	for _, it := range r.items {
		if it.Kind == ItemEvent {
			out = append(out, it.Event)
		} else {
			rest = append(rest, it)
		}
	}
	r.items = rest
	return out
}

// faceSpec is a methane sensor at a coal face (Art. 498: alarm 1.0, cut-off
// 1.5, restore 1.0 %CH4) cutting K1, and K1 itself.
func faceSpec(outputs ...OutputSpec) Spec {
	rs, _ := Preset("coal_face")
	for i := range rs {
		if rs[i].Level == LevelCutoff {
			rs[i].Outputs = []string{"K1"}
		}
	}
	if len(outputs) == 0 {
		outputs = []OutputSpec{{Name: "K1"}}
	}
	return Spec{Sensors: []SensorRules{{Sensor: "CH4", Type: "methane", Resolution: MethaneResolution, Rules: rs}}, Outputs: outputs}
}

func readingAt(sensor string, v float64, at time.Time) reading.Reading {
	return reading.Reading{Sensor: sensor, Time: at, Value: v, Status: reading.StatusNormal}
}
