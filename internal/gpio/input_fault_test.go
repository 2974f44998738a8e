package gpio

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// runInput starts in.Run for s on l and returns the input and a function
// that stops it and waits (also run at cleanup).
func runInput(t *testing.T, s config.Sensor, l Lookup, c *collector) (*Input, func()) {
	t.Helper()
	return runInputLog(t, s, l, c, nil)
}

func runInputLog(t *testing.T, s config.Sensor, l Lookup, c *collector, log *slog.Logger) (*Input, func()) {
	t.Helper()
	in, err := NewInput(s, l, c.emit, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
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
	t.Cleanup(stop)
	return in, stop
}

// fakePin is a gpiotest pin whose reads and edge waits can fail
// (LevelReader, EdgeWaiter), counting configurations and waits.
type fakePin struct {
	gpiotest.Pin
	mu               sync.Mutex
	readErr, waitErr error
	ins, waits       atomic.Int64
}

func (p *fakePin) set(readErr, waitErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readErr, p.waitErr = readErr, waitErr
}

func (p *fakePin) In(pull pgpio.Pull, edge pgpio.Edge) error {
	p.ins.Add(1)
	return p.Pin.In(pull, edge)
}

func (p *fakePin) ReadLevel() (pgpio.Level, error) {
	p.mu.Lock()
	err := p.readErr
	p.mu.Unlock()
	if err != nil {
		return pgpio.Low, err // what periph's Read gives after an ioctl error
	}
	return p.Read(), nil
}

func (p *fakePin) WaitEdge(timeout time.Duration) (bool, error) {
	p.waits.Add(1)
	p.mu.Lock()
	err := p.waitErr
	p.mu.Unlock()
	if err != nil {
		return false, err
	}
	return p.Pin.WaitForEdge(timeout), nil
}

func anyReading(reading.Reading) bool { return true }

// While reads fail, an input gives fault readings with the reason and
// code gpio and nothing else, whichever level active_low maps to "active"; once reads
// work again it gives the line's value.
func TestInput_ReadErrorIsAFaultNeverALevel(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		t.Run(map[bool]string{false: "active_high", true: "active_low"}[activeLow], func(t *testing.T) {
			pin := &fakePin{Pin: gpiotest.Pin{N: "GPIO6", Num: 6, L: pgpio.High, EdgesChan: make(chan pgpio.Level, 4)}}
			s := config.Sensor{ID: "PWR-1", Type: "digital", Interval: config.Duration(50 * time.Millisecond),
				GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 6, ActiveLow: activeLow}}
			c := newCollector()
			runInput(t, s, PinMap{{"gpiochip0", 6}: pin}, c)
			high := 1.0
			if activeLow {
				high = 0
			}
			c.next(t, "initial", value(high))

			pin.set(errors.New("GPIO_V2_LINE_GET_VALUES_IOCTL: input/output error"), nil)
			c.next(t, "fault", func(r reading.Reading) bool { return r.Status == reading.StatusFault })
			for range 5 {
				r := c.next(t, "reading while failing", anyReading)
				if r.Status != reading.StatusFault || r.Valid() || r.Code != reading.CodeGPIO ||
					r.Err != "gpio chip gpiochip0 line 6: read: GPIO_V2_LINE_GET_VALUES_IOCTL: input/output error" {
					t.Fatalf("reading while the line fails: %+v, want only faults", r)
				}
			}
			pin.set(nil, nil)
			c.next(t, "valid again", value(high))
		})
	}
}

// A wait for an edge that fails is a fault too: the input gives a fault
// reading, configures the line afresh once per interval (no spinning),
// and reads again once the waits work.
func TestInput_WaitErrorIsAFaultAndDoesNotSpin(t *testing.T) {
	pin := &fakePin{Pin: gpiotest.Pin{N: "GPIO7", Num: 7, L: pgpio.High, EdgesChan: make(chan pgpio.Level, 4)}}
	s := config.Sensor{ID: "FAN-2", Type: "digital", Interval: config.Duration(100 * time.Millisecond),
		GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 7}}
	c := newCollector()
	runInput(t, s, PinMap{{"gpiochip0", 7}: pin}, c)
	c.next(t, "initial", value(1))

	pin.set(nil, errors.New("read edge event: bad file descriptor"))
	f := c.next(t, "fault", func(r reading.Reading) bool { return r.Status == reading.StatusFault })
	if f.Err != "gpio chip gpiochip0 line 7: wait for edge: read edge event: bad file descriptor" || f.Code != reading.CodeGPIO {
		t.Fatalf("fault %q code %q, want code gpio", f.Err, f.Code)
	}
	ins, waits := pin.ins.Load(), pin.waits.Load()
	time.Sleep(500 * time.Millisecond) // count what a failing wait costs over half a second
	if di, dw := pin.ins.Load()-ins, pin.waits.Load()-waits; di > 10 || dw > 10 {
		t.Fatalf("in 500ms of failing waits: %d configurations, %d waits: spinning", di, dw)
	}
	pin.set(nil, nil)
	c.next(t, "valid again", value(1))
}

// silentPin is a pin whose WaitForEdge fails at once without saying so
// (periph logs and returns false on an fd error).
type silentPin struct {
	gpiotest.Pin
	waits atomic.Int64
}

func (p *silentPin) WaitForEdge(time.Duration) bool {
	p.waits.Add(1)
	return false
}

// A WaitForEdge that returns at once must not make the loop spin.
func TestInput_WaitForEdgeFailingAtOnceDoesNotSpin(t *testing.T) {
	pin := &silentPin{Pin: gpiotest.Pin{N: "GPIO8", Num: 8, L: pgpio.High, EdgesChan: make(chan pgpio.Level, 4)}}
	s := config.Sensor{ID: "DOOR-2", Type: "digital", GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 8}}
	c := newCollector()
	in, _ := runInput(t, s, PinMap{{"gpiochip0", 8}: pin}, c)
	c.next(t, "initial", value(1))
	w := pin.waits.Load()
	time.Sleep(500 * time.Millisecond)
	if n := pin.waits.Load() - w; n > 50 {
		t.Fatalf("%d waits in 500ms: spinning", n)
	}
	if age := time.Since(in.LastRead()); age > 2*time.Second {
		t.Fatalf("LastRead %v old while the loop runs", age)
	}
}

// LastRead moves on while the input runs, also while its line fails, so
// that a supervisor can tell a stuck input from a faulty one.
func TestInput_LastReadAdvancesWhileFaulty(t *testing.T) {
	pin := &fakePin{Pin: gpiotest.Pin{N: "GPIO9", Num: 9, EdgesChan: make(chan pgpio.Level, 4)}}
	s := config.Sensor{ID: "FLOAT-3", Type: "digital", Interval: config.Duration(100 * time.Millisecond),
		GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 9}}
	pin.set(errors.New("input/output error"), nil)
	c := newCollector()
	in, err := NewInput(s, PinMap{{"gpiochip0", 9}: pin}, c.emit, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !in.LastRead().IsZero() {
		t.Fatal("LastRead set before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = in.Run(ctx) }()
	defer func() { cancel(); <-done }()
	c.next(t, "fault", func(r reading.Reading) bool { return r.Status == reading.StatusFault })
	first := in.LastRead()
	c.next(t, "second fault", func(r reading.Reading) bool { return r.Status == reading.StatusFault })
	c.next(t, "third fault", func(r reading.Reading) bool { return r.Status == reading.StatusFault })
	if !in.LastRead().After(first) || time.Since(in.LastRead()) > 2*time.Second {
		t.Fatalf("LastRead %v after %v (now %v): does not advance", in.LastRead(), first, time.Now())
	}
}

// A line without edge detection that keeps failing is retried every
// interval; the "sampling instead" warning is logged once, not per retry.
func TestInput_NoEdgeWarningOnce(t *testing.T) {
	pin := &fakePin{Pin: gpiotest.Pin{N: "GPIO10", Num: 10, L: pgpio.High}} // no EdgesChan: edges refused
	s := config.Sensor{ID: "DOOR-3", Type: "digital", Interval: config.Duration(50 * time.Millisecond),
		GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 10}}
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	pin.set(errors.New("input/output error"), nil)
	c := newCollector()
	_, stop := runInputLog(t, s, PinMap{{"gpiochip0", 10}: pin}, c, log)
	for range 4 {
		c.next(t, "fault", func(r reading.Reading) bool { return r.Status == reading.StatusFault })
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(buf.String(), "without edge detection"); n != 1 || pin.ins.Load() < 6 {
		t.Fatalf("warning logged %d times over %d configurations, want once:\n%s", n, pin.ins.Load(), buf.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
