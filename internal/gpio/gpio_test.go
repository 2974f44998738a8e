package gpio

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func ms(f float64) time.Time { return t0.Add(time.Duration(f * float64(time.Millisecond))) }

// G1: falling-edge input, debounce 10 ms, edges at 0 (F), 0.3 (R), 0.8 (F),
// 1.5 (R), 2.1 ms (F), then low for 50 ms: exactly one event, stamped
// 12.1 ms. A 3 ms glitch later gives nothing.
func TestDebouncerG1(t *testing.T) {
	for _, mode := range []string{"update", "edge"} {
		t.Run(mode, func(t *testing.T) {
			d := NewDebouncer(10 * time.Millisecond)
			feed := d.Update
			if mode == "edge" {
				feed = d.Edge
			}
			// The line idles high long before the press.
			if _, _, ch := d.Update(true, ms(-100)); ch {
				t.Fatal("first sample gave a change before the window")
			}
			if l, at, ch := d.Update(true, ms(-50)); !ch || !l || !at.Equal(ms(-90)) {
				t.Fatalf("initial level: got %v at %v changed %v, want high at -90 ms", l, at.Sub(t0), ch)
			}

			type ev struct {
				level bool
				at    time.Time
			}
			var events []ev
			record := func(l bool, at time.Time, ch bool) {
				if ch {
					events = append(events, ev{l, at})
				}
			}
			edges := []struct {
				at    float64
				level bool
			}{{0, false}, {0.3, true}, {0.8, false}, {1.5, true}, {2.1, false}}
			for _, e := range edges {
				record(feed(e.level, ms(e.at)))
			}
			// Sample the low line every 0.7 ms from 2.5 to 52.1 ms: the
			// change is observed at 12.3 ms but stamped when it became
			// stable.
			for at := 2.5; at <= 52.1; at += 0.7 {
				record(d.Update(false, ms(at)))
			}
			if len(events) != 1 {
				t.Fatalf("got %d events %v, want exactly 1", len(events), events)
			}
			if events[0].level || !events[0].at.Equal(ms(12.1)) {
				t.Fatalf("event: level %v at %v, want low at 12.1ms", events[0].level, events[0].at.Sub(t0))
			}

			// A 3 ms glitch high at 60 ms gives nothing.
			events = nil
			record(feed(true, ms(60)))
			for i := 601; i < 630; i++ {
				record(d.Update(true, ms(float64(i)/10)))
			}
			record(feed(false, ms(63)))
			for i := 631; i <= 1000; i++ {
				record(d.Update(false, ms(float64(i)/10)))
			}
			record(d.Advance(ms(200)))
			if len(events) != 0 {
				t.Fatalf("3 ms glitch gave events %v", events)
			}
			if l, known := d.Level(); l || !known {
				t.Fatalf("level after glitch: %v known %v, want low", l, known)
			}
		})
	}
}

func TestDebouncerDeadline(t *testing.T) {
	d := NewDebouncer(0)
	if d.Window() != DefaultDebounce {
		t.Fatalf("window %v, want default %v", d.Window(), DefaultDebounce)
	}
	if _, ok := d.Deadline(); ok {
		t.Fatal("deadline before any sample")
	}
	d.Update(true, ms(0))
	if dl, ok := d.Deadline(); !ok || !dl.Equal(ms(10)) {
		t.Fatalf("deadline %v %v, want 10ms", dl.Sub(t0), ok)
	}
	if _, _, ch := d.Advance(ms(9.999)); ch {
		t.Fatal("change before the window ended")
	}
	if l, at, ch := d.Advance(ms(10)); !ch || !l || !at.Equal(ms(10)) {
		t.Fatalf("Advance at 10ms: %v %v %v", l, at.Sub(t0), ch)
	}
	if _, ok := d.Deadline(); ok {
		t.Fatal("deadline while stable")
	}
	// An edge that reads the same level restarts the timer of a pending change.
	d.Update(false, ms(20))
	d.Edge(false, ms(25))
	if dl, _ := d.Deadline(); !dl.Equal(ms(35)) {
		t.Fatalf("deadline after a same-level edge %v, want 35ms", dl.Sub(t0))
	}
}

func TestOpenNotFound(t *testing.T) {
	pins := PinMap{{"gpiochip0", 4}: &gpiotest.Pin{N: "GPIO4"}}
	if p, err := Open(pins, "gpiochip0", 4); err != nil || p.Name() != "GPIO4" {
		t.Fatalf("Open existing: %v, %v", p, err)
	}
	_, err := Open(pins, "gpiochip0", 17)
	if !errors.Is(err, ErrNotFound) || err.Error() != "gpio: chip gpiochip0 line 17: not found" {
		t.Fatalf("Open missing: %v", err)
	}
	if _, err := Open(nil, "gpiochip0", 17); err == nil || !strings.Contains(err.Error(), "chip gpiochip0 line 17") {
		t.Fatalf("Open with nil lookup: %v", err)
	}
}

// On a machine without GPIO chips (this test machine, CI containers)
// host.Init succeeds and finds no pins: Open must say so.
func TestHostNoChips(t *testing.T) {
	if m, _ := filepath.Glob("/dev/gpiochip*"); len(m) > 0 {
		t.Skipf("this machine has GPIO chips %v", m)
	}
	l, err := Host()
	if err != nil {
		t.Fatalf("Host: %v", err)
	}
	_, err = Open(l, "gpiochip0", 17)
	want := "gpio: chip gpiochip0 line 17: not found (this board has no GPIO chips?)"
	if !errors.Is(err, ErrNotFound) || err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	s := config.Sensor{ID: "FAN-1", Type: "digital", GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 17}}
	_, err = NewInput(s, l, func(reading.Reading) {}, nil)
	if err == nil || err.Error() != "sensor FAN-1: "+want {
		t.Fatalf("NewInput: %v", err)
	}
}

// collector gathers readings emitted on the reader goroutine.
type collector struct {
	ch chan reading.Reading
}

func newCollector() *collector { return &collector{ch: make(chan reading.Reading, 1000)} }

func (c *collector) emit(r reading.Reading) { c.ch <- r }

// next returns the next reading accepted by match, skipping others.
func (c *collector) next(t *testing.T, what string, match func(reading.Reading) bool) reading.Reading {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-c.ch:
			if match(r) {
				return r
			}
		case <-deadline:
			t.Fatalf("no reading %s within 10s", what)
		}
	}
}

func startInput(t *testing.T, s config.Sensor, l Lookup, c *collector) {
	t.Helper()
	in, err := NewInput(s, l, c.emit, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancel")
		}
	})
}

func value(v float64) func(reading.Reading) bool {
	return func(r reading.Reading) bool { return r.Status == reading.StatusNormal && r.Value == v }
}

func TestInputEdges(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		name := "active_high"
		if activeLow {
			name = "active_low"
		}
		t.Run(name, func(t *testing.T) {
			// A fan-running contact: idles low (pull-down), high while running.
			pin := &gpiotest.Pin{N: "GPIO17", Num: 17, EdgesChan: make(chan pgpio.Level, 16)}
			s := config.Sensor{ID: "FAN-1", Type: "digital", Unit: "", Interval: config.Duration(200 * time.Millisecond),
				GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 17, Pull: "down", ActiveLow: activeLow}}
			c := newCollector()
			startInput(t, s, PinMap{{"gpiochip0", 17}: pin}, c)

			idle, active := 0.0, 1.0
			if activeLow {
				idle, active = 1, 0
			}
			first := c.next(t, "initial", func(reading.Reading) bool { return true })
			if first.Status != reading.StatusNormal || first.Value != idle || first.Sensor != "FAN-1" || first.Type != "digital" {
				t.Fatalf("initial reading %+v, want value %v normal", first, idle)
			}
			pin.Lock()
			if pin.P != pgpio.PullDown {
				t.Errorf("pull %v, want down", pin.P)
			}
			pin.Unlock()
			// Periodic re-emission of the unchanged value.
			again := c.next(t, "periodic", func(reading.Reading) bool { return true })
			if again.Value != idle || !again.Time.After(first.Time) {
				t.Fatalf("periodic reading %+v after %v", again, first.Time)
			}

			before := time.Now()
			pin.EdgesChan <- pgpio.High
			r := c.next(t, "after rising edge", value(active))
			// Stamped when stable: at least one debounce window after the edge.
			if r.Time.Before(before.Add(DefaultDebounce)) {
				t.Fatalf("change stamped %v, before edge+debounce %v", r.Time, before.Add(DefaultDebounce))
			}
			pin.EdgesChan <- pgpio.Low
			c.next(t, "after falling edge", value(idle))
		})
	}
}

// A pin without edge detection (gpiotest refuses edges without EdgesChan)
// is sampled.
func TestInputSampling(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO5", Num: 5, L: pgpio.High}
	s := config.Sensor{ID: "DOOR-1", Type: "digital", GPIO: &config.GPIOIn{Chip: "gpiochip1", Line: 5}}
	c := newCollector()
	startInput(t, s, PinMap{{"gpiochip1", 5}: pin}, c)
	c.next(t, "initial high", value(1))
	_ = pin.Out(pgpio.Low)
	c.next(t, "low after sampling", value(0))
}

func TestNewInputErrors(t *testing.T) {
	pins := PinMap{{"gpiochip0", 1}: &gpiotest.Pin{}}
	emit := func(reading.Reading) {}
	cases := []struct {
		s    config.Sensor
		want string
	}{
		{config.Sensor{ID: "A"}, "sensor A: no gpio block"},
		{config.Sensor{ID: "B", GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 1, Pull: "sideways"}}, `sensor B: gpio pull "sideways" (want up, down or none)`},
		{config.Sensor{ID: "C", GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 2}}, "sensor C: gpio: chip gpiochip0 line 2: not found"},
	}
	for _, tc := range cases {
		_, err := NewInput(tc.s, pins, emit, nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %q", tc.s.ID, err, tc.want)
		}
	}
}
