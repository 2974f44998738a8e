package actuate

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/gpio"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/rules"
)

// eventually polls cond every 5 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newManager(t *testing.T, outs []config.Output, opt Options) *Manager {
	t.Helper()
	m, err := NewManager(outs, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func stateOf(m *Manager, name string) OutputState {
	for _, s := range m.State() {
		if s.Name == name {
			return s
		}
	}
	return OutputState{}
}

func change(out string, cut bool) []rules.Change {
	return []rules.Change{{Output: out, Cut: cut, Time: time.Now()}}
}

func level(p *gpiotest.Pin) pgpio.Level { return p.Read() }

func TestGPIOOutputsCutRestoreCut(t *testing.T) {
	// A relay driven high to energise, and one driven low (active_low).
	hi := &gpiotest.Pin{N: "GPIO20", Num: 20, L: pgpio.High} // left energised by a previous run
	lo := &gpiotest.Pin{N: "GPIO21", Num: 21, L: pgpio.Low}  // idem, active low
	pins := gpio.PinMap{{Chip: "gpiochip0", Line: 20}: hi, {Chip: "gpiochip0", Line: 21}: lo}
	outs := []config.Output{
		{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}},
		{Name: "K2", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 21, ActiveLow: true}},
	}
	m := newManager(t, outs, Options{Pins: pins})

	// Cut before NewManager returns: K1 low, K2 high.
	if level(hi) != pgpio.Low || level(lo) != pgpio.High {
		t.Fatalf("at start: K1 %v K2 %v, want K1 Low, K2 High (both cut)", level(hi), level(lo))
	}
	for _, s := range m.State() {
		if !s.Cut || s.Energised || !s.Settled || s.LastError != "" {
			t.Fatalf("state at start %+v, want cut, de-energised, settled", s)
		}
	}

	m.Apply(change("K1", false))
	eventually(t, "K1 energised (High)", func() bool { return level(hi) == pgpio.High })
	eventually(t, "K1 state settled", func() bool { s := stateOf(m, "K1"); return s.Settled && s.Energised && !s.Cut })
	if level(lo) != pgpio.High {
		t.Fatal("K2 changed with K1")
	}
	m.Apply(change("K2", false))
	eventually(t, "K2 energised (Low, active low)", func() bool { return level(lo) == pgpio.Low })

	m.Apply([]rules.Change{{Output: "K1", Cut: true}, {Output: "K2", Cut: true}})
	eventually(t, "K1 and K2 cut", func() bool { return level(hi) == pgpio.Low && level(lo) == pgpio.High })
	eventually(t, "states cut", func() bool {
		for _, s := range m.State() {
			if !s.Cut || s.Energised || !s.Settled {
				return false
			}
		}
		return true
	})

	// An unknown output is ignored, the others still apply.
	m.Apply([]rules.Change{{Output: "K9", Cut: false}, {Output: "K1", Cut: false}})
	eventually(t, "K1 energised again", func() bool { return level(hi) == pgpio.High })
}

func TestCloseCutsEverything(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(3)
	p := startPoller(t, bank)
	hi := &gpiotest.Pin{N: "GPIO20", Num: 20}
	lo := &gpiotest.Pin{N: "GPIO21", Num: 21}
	outs := []config.Output{
		{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}},
		{Name: "K2", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 21, ActiveLow: true}},
		{Name: "QF1", Modbus: &config.ModbusCoil{Bus: "io", Slave: 3, Coil: 12}},
	}
	m, err := NewManager(outs, Options{
		Pins:  gpio.PinMap{{Chip: "gpiochip0", Line: 20}: hi, {Chip: "gpiochip0", Line: 21}: lo},
		Buses: map[string]CoilBus{"io": p}, RetryMin: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Apply([]rules.Change{{Output: "K1"}, {Output: "K2"}, {Output: "QF1"}})
	eventually(t, "all energised", func() bool {
		return level(hi) == pgpio.High && level(lo) == pgpio.Low && bank.Coil(3, 12)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close returned only once each output was confirmed cut.
	if level(hi) != pgpio.Low || level(lo) != pgpio.High || bank.Coil(3, 12) {
		t.Fatalf("after Close: K1 %v K2 %v QF1 %v, want Low High false", level(hi), level(lo), bank.Coil(3, 12))
	}
	for _, s := range m.State() {
		if !s.Cut || s.Energised || !s.Settled {
			t.Errorf("after Close %+v", s)
		}
	}
	// Restores after Close are ignored; a second Close is a no-op.
	m.Apply([]rules.Change{{Output: "K1"}})
	if s := stateOf(m, "K1"); !s.Cut || level(hi) != pgpio.Low {
		t.Errorf("restore after Close applied: %+v", s)
	}
	if err := m.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewManagerErrors(t *testing.T) {
	pins := gpio.PinMap{{Chip: "gpiochip0", Line: 20}: &gpiotest.Pin{}}
	buses := map[string]CoilBus{"io": nilBus{}}
	cases := []struct {
		outs []config.Output
		want string
	}{
		{[]config.Output{{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 17}}},
			"output K1: gpio: chip gpiochip0 line 17: not found"},
		{[]config.Output{{Name: "K1"}}, "output K1: neither gpio nor modbus"},
		{[]config.Output{{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}, Modbus: &config.ModbusCoil{Bus: "io"}}},
			"output K1: both gpio and modbus (want one)"},
		{[]config.Output{{Name: "QF1", Modbus: &config.ModbusCoil{Bus: "rs485-2", Slave: 1}}}, `output QF1: bus "rs485-2" has no poller`},
		{[]config.Output{{Name: "QF1", Modbus: &config.ModbusCoil{Bus: "io", Slave: 1, Coil: 70000}}}, "output QF1: coil 70000 out of range 0..65535"},
		{[]config.Output{
			{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}},
			{Name: "K1", Modbus: &config.ModbusCoil{Bus: "io", Slave: 1}}}, "output K1: defined twice"},
	}
	for _, tc := range cases {
		_, err := NewManager(tc.outs, Options{Pins: pins, Buses: buses})
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	_, err := NewManager(cases[0].outs, Options{Pins: pins})
	if !errors.Is(err, gpio.ErrNotFound) {
		t.Errorf("missing line does not wrap gpio.ErrNotFound: %v", err)
	}
}

// On this machine (no GPIO chips) a configured relay is a clear start-up
// error.
func TestMissingChipOnHost(t *testing.T) {
	if m, _ := filepath.Glob("/dev/gpiochip*"); len(m) > 0 {
		t.Skipf("this machine has GPIO chips %v", m)
	}
	l, err := gpio.Host()
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewManager([]config.Output{{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 17}}}, Options{Pins: l})
	want := "output K1: gpio: chip gpiochip0 line 17: not found (this board has no GPIO chips?)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

type nilBus struct{}

func (nilBus) WriteCoil(context.Context, byte, uint16, bool) error { return errors.New("nil bus") }
func (nilBus) Read(context.Context, byte, string, uint16, uint16) ([]byte, error) {
	return nil, errors.New("nil bus")
}

// startPoller runs a real modbus.Poller without sensors against a real
// Modbus TCP slave serving bank.
func startPoller(t *testing.T, bank *mbslave.Bank) *modbus.Poller {
	t.Helper()
	addr := mbslavetest.StartTCP(t, bank)
	p, err := modbus.NewPoller(config.Bus{Name: "io", Protocol: "tcp", Address: addr, Timeout: config.Duration(time.Second)}, nil, func(reading.Reading) {}, modbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("poller Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("poller did not stop within 10s")
		}
	})
	return p
}

func TestCoilOutput(t *testing.T) {
	bank := mbslave.NewBank()
	bank.SetCoil(3, 12, true) // breaker left closed by a previous run
	p := startPoller(t, bank)
	m := newManager(t, []config.Output{{Name: "QF1", Modbus: &config.ModbusCoil{Bus: "io", Slave: 3, Coil: 12}}},
		Options{Buses: map[string]CoilBus{"io": p}, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
			VerifyEvery: 20 * time.Millisecond})

	eventually(t, "coil cut at start", func() bool { return !bank.Coil(3, 12) })
	eventually(t, "cut read back", func() bool { s := stateOf(m, "QF1"); return s.Settled && !s.Energised && s.Cut })

	m.Apply(change("QF1", false))
	eventually(t, "coil 1 after restore", func() bool { return bank.Coil(3, 12) })
	eventually(t, "restore read back", func() bool { s := stateOf(m, "QF1"); return s.Settled && s.Energised && !s.Cut })

	t.Run("read-back mismatch is re-written", func(t *testing.T) {
		before := bank.Requests(3)
		bank.SetCoil(3, 12, false) // someone opened the breaker behind hazmon's back
		eventually(t, "coil re-written to 1", func() bool { return bank.Coil(3, 12) && bank.Requests(3) >= before+2 })
		eventually(t, "settled energised", func() bool { s := stateOf(m, "QF1"); return s.Settled && s.Energised })
	})

	t.Run("write failure is retried until it holds", func(t *testing.T) {
		bank.SetFault(3, mbslave.Fault{Exception: mbslave.ExSlaveDeviceFailure})
		m.Apply(change("QF1", true))
		eventually(t, "last error is the exception", func() bool {
			s := stateOf(m, "QF1")
			return !s.Settled && strings.Contains(s.LastError, "write coil") && strings.Contains(s.LastError, "exception 4")
		})
		if !bank.Coil(3, 12) {
			t.Fatal("coil changed although every write failed")
		}
		n := bank.Requests(3)
		eventually(t, "retries", func() bool { return bank.Requests(3) >= n+2 })
		bank.SetFault(3, mbslave.Fault{})
		eventually(t, "coil 0 once the slave answers", func() bool { return !bank.Coil(3, 12) })
		eventually(t, "settled cut, error cleared", func() bool {
			s := stateOf(m, "QF1")
			return s.Settled && !s.Energised && s.LastError == ""
		})
	})
}

// Close with a slave that refuses every write reports the output not
// confirmed cut once its context ends.
func TestCloseReportsUnconfirmed(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(3)
	p := startPoller(t, bank)
	m, err := NewManager([]config.Output{{Name: "QF1", Modbus: &config.ModbusCoil{Bus: "io", Slave: 3, Coil: 12}}},
		Options{Buses: map[string]CoilBus{"io": p}, RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m.Apply(change("QF1", false))
	eventually(t, "coil 1", func() bool { return bank.Coil(3, 12) })
	bank.SetFault(3, mbslave.Fault{Exception: mbslave.ExSlaveDeviceFailure})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = m.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "outputs not confirmed cut: QF1 (bus io slave 3 coil 12") ||
		!errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
}

// fakeClock is a settable clock for feed timeouts.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t0.Add(d)
	return c.t
}

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

type feedLog struct {
	mu  sync.Mutex
	evs []FeedEvent
}

func (l *feedLog) on(ev FeedEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, ev)
}

func (l *feedLog) take() []FeedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.evs
	l.evs = nil
	return evs
}

func TestFeedAbnormal(t *testing.T) {
	clk := &fakeClock{t: t0}
	var log feedLog
	pin := &gpiotest.Pin{N: "GPIO20", Num: 20}
	m := newManager(t, []config.Output{{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}, Feed: "FEED-1"}},
		Options{Pins: gpio.PinMap{{Chip: "gpiochip0", Line: 20}: pin}, OnFeed: log.on, Now: clk.Now, FeedCheckEvery: time.Hour})
	if got := m.FeedSensors(); len(got) != 1 || got[0] != "FEED-1" {
		t.Fatalf("FeedSensors %v", got)
	}
	expect := func(what string, want ...FeedEvent) {
		t.Helper()
		got := log.take()
		if len(got) != len(want) {
			t.Fatalf("%s: events %+v, want %+v", what, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: event %+v, want %+v", what, got[i], want[i])
			}
		}
	}
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	feed := func(at float64, present bool) { m.Feed("FEED-1", present, true, clk.set(sec(at))) }

	// Started cut at 0; no power: consistent.
	feed(0.5, false)
	expect("cut, no power")

	t.Run("no power while allowed", func(t *testing.T) {
		clk.set(sec(10))
		m.Apply(change("K1", false))
		feed(11, false)
		feed(11.999, false)
		expect("within feed_timeout of the restore")
		feed(12, false)
		expect("2s after restore", FeedEvent{Output: "K1", Feed: "FEED-1", State: FeedRaised, Time: t0.Add(sec(12)),
			Reason: "no power on feed FEED-1 while the output allows it, for 2s"})
		if s := stateOf(m, "K1"); !s.FeedAbnormal || s.FeedReason == "" || !s.FeedValid || s.FeedPresent {
			t.Fatalf("state %+v", s)
		}
		feed(13, false)
		expect("raised once")
		// An invalid feed reading suspends the check: the alarm holds.
		m.Feed("FEED-1", false, false, clk.set(sec(14)))
		expect("invalid feed")
		if s := stateOf(m, "K1"); !s.FeedAbnormal || s.FeedValid {
			t.Fatalf("state after invalid feed %+v", s)
		}
		feed(15, true)
		expect("power back", FeedEvent{Output: "K1", Feed: "FEED-1", State: FeedCleared, Time: t0.Add(sec(15)),
			Reason: "feed FEED-1 agrees with the output again"})
		if s := stateOf(m, "K1"); s.FeedAbnormal || s.FeedReason != "" {
			t.Fatalf("state after clear %+v", s)
		}
	})

	t.Run("power still present after cut", func(t *testing.T) {
		clk.set(sec(20))
		m.Apply(change("K1", true))
		feed(21, true)
		expect("within feed_timeout of the cut")
		feed(22, true)
		expect("2s after cut", FeedEvent{Output: "K1", Feed: "FEED-1", State: FeedRaised, Time: t0.Add(sec(22)), Cut: true,
			Reason: "power still present on feed FEED-1 2s after cut-off"})
		feed(23, false)
		expect("breaker opened at last", FeedEvent{Output: "K1", Feed: "FEED-1", State: FeedCleared, Time: t0.Add(sec(23)), Cut: true,
			Reason: "feed FEED-1 agrees with the output again"})
	})

	t.Run("power lost while allowed, no new feed reading", func(t *testing.T) {
		clk.set(sec(30))
		m.Apply(change("K1", false))
		feed(30.5, true)
		feed(40, false) // power dropped long after the restore
		expect("drop just seen")
		clk.set(sec(41.9))
		m.checkFeeds()
		expect("drop for 1.9s")
		clk.set(sec(42))
		m.checkFeeds() // what the feed-check goroutine does
		expect("drop for 2s", FeedEvent{Output: "K1", Feed: "FEED-1", State: FeedRaised, Time: t0.Add(sec(42)),
			Reason: "no power on feed FEED-1 while the output allows it, for 2s"})
		// Cutting the output makes "no power" the expected state: cleared.
		m.Apply(change("K1", true))
		feed(42.5, false)
		expect("cut while abnormal", FeedEvent{Output: "K1", Feed: "FEED-1", State: FeedCleared, Time: t0.Add(sec(42.5)), Cut: true,
			Reason: "feed FEED-1 agrees with the output again"})
	})

	// Readings of other sensors are ignored.
	m.Feed("CH4-101", true, true, clk.set(sec(60)))
	clk.set(sec(100))
	m.checkFeeds()
	expect("other sensor")
}

// The feed-check goroutine raises the alarm without new feed readings
// (real clock).
func TestFeedCheckGoroutine(t *testing.T) {
	events := make(chan FeedEvent, 4)
	pin := &gpiotest.Pin{N: "GPIO20", Num: 20}
	m := newManager(t, []config.Output{{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}, Feed: "FEED-1",
		FeedTimeout: config.Duration(50 * time.Millisecond)}},
		Options{Pins: gpio.PinMap{{Chip: "gpiochip0", Line: 20}: pin}, OnFeed: func(ev FeedEvent) { events <- ev },
			FeedCheckEvery: 10 * time.Millisecond})
	m.FeedReading(reading.Reading{Sensor: "FEED-1", Value: 1, Status: reading.StatusNormal, Time: time.Now()})
	select {
	case ev := <-events:
		if ev.State != FeedRaised || ev.Output != "K1" || !ev.Cut {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no feed abnormal within 10s")
	}
}
