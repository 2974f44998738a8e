package actuate

import (
	"context"
	"errors"
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
	"github.com/hazmon/hazmon/internal/safety"
)

// eventually polls cond every 5 ms for up to 10 s (real I/O: a slave over TCP).
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

// reports collects a lane's observations.
type reports struct {
	mu  sync.Mutex
	obs []safety.Observation
}

func (r *reports) add(o safety.Observation) {
	r.mu.Lock()
	r.obs = append(r.obs, o)
	r.mu.Unlock()
}

func (r *reports) last() safety.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.obs) == 0 {
		return safety.Observation{}
	}
	return r.obs[len(r.obs)-1]
}

func (r *reports) any(f func(safety.Observation) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.obs {
		if f(o) {
			return true
		}
	}
	return false
}

// runLane opens c and runs its lane until the test ends.
func runLane(t *testing.T, c config.Output, res Resources, opt LaneOptions) (*Lane, *reports) {
	t.Helper()
	rep := &reports{}
	opt.Report = rep.add
	l, err := NewLane(c, res, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return l, rep
}

func cmd(name string, gen uint64, cut bool) safety.Command {
	return safety.Command{Output: name, Gen: gen, Cut: cut}
}

// TestLane_GPIOCutAtOpen: a relay left energised by a previous run is cut
// before NewLane returns (high line, and low line with active_low).
func TestLane_GPIOCutAtOpen(t *testing.T) {
	hi := &gpiotest.Pin{N: "GPIO20", Num: 20, L: pgpio.High}
	lo := &gpiotest.Pin{N: "GPIO21", Num: 21, L: pgpio.Low}
	pins := gpio.PinMap{{Chip: "gpiochip0", Line: 20}: hi, {Chip: "gpiochip0", Line: 21}: lo}
	for _, c := range []config.Output{
		{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}},
		{Name: "K2", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 21, ActiveLow: true}},
	} {
		if _, err := NewLane(c, Resources{Pins: pins}, LaneOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if hi.Read() != pgpio.Low || lo.Read() != pgpio.High {
		t.Fatalf("K1 %v K2 %v, want Low and High (both cut)", hi.Read(), lo.Read())
	}
}

// TestLane_GPIOFollowsCommands: the lane writes each command and confirms it.
func TestLane_GPIOFollowsCommands(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO20", Num: 20}
	l, rep := runLane(t, config.Output{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}},
		Resources{Pins: gpio.PinMap{{Chip: "gpiochip0", Line: 20}: pin}}, LaneOptions{})
	l.Command(cmd("K1", 1, false))
	eventually(t, "energised and confirmed", func() bool {
		o := rep.last()
		return pin.Read() == pgpio.High && o.Gen == 1 && o.Confirmed && o.Energised
	})
	l.Command(cmd("K1", 2, true))
	eventually(t, "cut and confirmed", func() bool {
		o := rep.last()
		return pin.Read() == pgpio.Low && o.Gen == 2 && o.Confirmed && !o.Energised
	})
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
		if err := <-done; err != nil {
			t.Errorf("poller Run: %v", err)
		}
	})
	return p
}

var fast = LaneOptions{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, VerifyEvery: 20 * time.Millisecond}

func coilOut() config.Output {
	return config.Output{Name: "QF1", Modbus: &config.ModbusCoil{Bus: "io", Slave: 3, Coil: 12}}
}

// TestLane_CoilConfirmedByReadBack: a breaker coil left closed is cut by
// the lane, then follows commands, each confirmed by reading it back.
func TestLane_CoilConfirmedByReadBack(t *testing.T) {
	bank := mbslave.NewBank()
	bank.SetCoil(3, 12, true)
	l, rep := runLane(t, coilOut(), Resources{Buses: map[string]CoilBus{"io": startPoller(t, bank)}}, fast)
	eventually(t, "coil cut at start", func() bool { return !bank.Coil(3, 12) })
	l.Command(cmd("QF1", 1, false))
	eventually(t, "coil 1, confirmed", func() bool { o := rep.last(); return bank.Coil(3, 12) && o.Gen == 1 && o.Confirmed })
	l.Command(cmd("QF1", 2, true))
	eventually(t, "coil 0, confirmed", func() bool { o := rep.last(); return !bank.Coil(3, 12) && o.Gen == 2 && o.Confirmed })
}

// TestLane_ExternalOpenNeverReenergised: something else opens a coil the
// lane holds energised (a PLC interlock, an emergency stop): the lane
// reports the mismatch and never writes it back on.
func TestLane_ExternalOpenNeverReenergised(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(3)
	l, rep := runLane(t, coilOut(), Resources{Buses: map[string]CoilBus{"io": startPoller(t, bank)}}, fast)
	l.Command(cmd("QF1", 1, false))
	eventually(t, "energised", func() bool { o := rep.last(); return bank.Coil(3, 12) && o.Confirmed })
	writes := len(bank.CoilWrites())
	bank.SetCoil(3, 12, false) // the PLC opens the breaker
	eventually(t, "mismatch reported", func() bool {
		return rep.any(func(o safety.Observation) bool { return o.Mismatch && o.Gen == 1 })
	})
	time.Sleep(20 * fast.VerifyEvery) // many read-back periods: real I/O, nothing to wait on
	if bank.Coil(3, 12) {
		t.Fatal("the lane energised a coil that something else had opened")
	}
	for _, w := range bank.CoilWrites()[writes:] {
		if w.On {
			t.Fatalf("coil written on after the external open: %+v", w)
		}
	}
}

// TestLane_InterlockHoldingCoilOpenNotFought: a PLC interlock holds the
// breaker coil open, so the lane's energising write is acknowledged and
// the coil reads back 0 at once. The lane reports the mismatch and does not
// write it on again (each write would pulse the breaker); a new command
// (a technician's restore) may try once more.
func TestLane_InterlockHoldingCoilOpenNotFought(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(3)
	bank.HoldCoil(3, 12, false)
	l, rep := runLane(t, coilOut(), Resources{Buses: map[string]CoilBus{"io": startPoller(t, bank)}}, fast)
	eventually(t, "cut at open", func() bool { return len(bank.CoilWrites()) >= 1 })
	l.Command(cmd("QF1", 1, false))
	eventually(t, "mismatch reported", func() bool {
		return rep.any(func(o safety.Observation) bool { return o.Mismatch && o.Gen == 1 })
	})
	time.Sleep(20 * fast.VerifyEvery) // many retry periods: real I/O, nothing to wait on
	on := 0
	for _, w := range bank.CoilWrites() {
		if w.On {
			on++
		}
	}
	if on != 1 {
		t.Fatalf("%d energising writes against a held-open coil, want 1", on)
	}
	bank.ReleaseCoil(3, 12)
	l.Command(cmd("QF1", 2, false))
	eventually(t, "energised after the new command", func() bool { o := rep.last(); return bank.Coil(3, 12) && o.Gen == 2 && o.Confirmed })
}

// TestLane_EnergisedWhileCutIsRewritten: drift toward power is corrected
// at once: a coil found on while commanded cut is written cut again.
func TestLane_EnergisedWhileCutIsRewritten(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(3)
	l, rep := runLane(t, coilOut(), Resources{Buses: map[string]CoilBus{"io": startPoller(t, bank)}}, fast)
	l.Command(cmd("QF1", 1, true))
	eventually(t, "cut confirmed", func() bool { o := rep.last(); return o.Gen == 1 && o.Confirmed })
	bank.SetCoil(3, 12, true)
	eventually(t, "written cut again", func() bool { return !bank.Coil(3, 12) && len(bank.CoilWrites()) >= 2 })
}

// TestLane_Heartbeat: the heartbeat coil toggles with each beat.
func TestLane_Heartbeat(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(3)
	c := coilOut()
	c.Heartbeat = &config.Heartbeat{Coil: 13, Every: config.Duration(time.Second)}
	l, _ := runLane(t, c, Resources{Buses: map[string]CoilBus{"io": startPoller(t, bank)}}, fast)
	var seen []bool
	for beat := uint64(1); beat <= 4; beat++ {
		l.Command(safety.Command{Output: "QF1", Gen: 1, Cut: true, Beat: beat})
		want := beat%2 == 1
		eventually(t, "heartbeat toggled", func() bool { return bank.Coil(3, 13) == want })
		seen = append(seen, bank.Coil(3, 13))
	}
	if len(seen) != 4 || seen[0] == seen[1] || seen[1] == seen[2] {
		t.Fatalf("heartbeat %v", seen)
	}
}

// TestLane_Close: Close cuts and waits for the read-back; with a slave
// that refuses every write it reports the output not confirmed cut.
func TestLane_Close(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(3)
	l, rep := runLane(t, coilOut(), Resources{Buses: map[string]CoilBus{"io": startPoller(t, bank)}}, fast)
	l.Command(cmd("QF1", 1, false))
	eventually(t, "energised", func() bool { o := rep.last(); return bank.Coil(3, 12) && o.Confirmed })
	bank.SetFault(3, mbslave.Fault{Exception: mbslave.ExSlaveDeviceFailure})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := l.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "QF1 (bus io slave 3 coil 12): not confirmed cut") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a refusing slave: %v", err)
	}
	bank.SetFault(3, mbslave.Fault{})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := l.Close(ctx2); err != nil {
		t.Fatal(err)
	}
	if bank.Coil(3, 12) {
		t.Fatal("Close returned with the coil on")
	}
	l.Command(cmd("QF1", 5, false)) // a late command cannot energise a closed lane
	time.Sleep(10 * fast.VerifyEvery)
	if bank.Coil(3, 12) {
		t.Fatal("a closed lane energised its coil")
	}
}

// TestNewLane_Errors: configuration errors name the output.
func TestNewLane_Errors(t *testing.T) {
	pins := gpio.PinMap{}
	cases := []struct {
		c    config.Output
		want string
	}{
		{config.Output{GPIO: &config.GPIOOut{Chip: "gpiochip0"}}, "output without a name"},
		{config.Output{Name: "K", GPIO: &config.GPIOOut{}, Modbus: &config.ModbusCoil{}}, "output K: both gpio and modbus"},
		{config.Output{Name: "K"}, "output K: neither gpio nor modbus"},
		{config.Output{Name: "K", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 17}}, "output K: gpio: chip gpiochip0 line 17: not found"},
		{config.Output{Name: "K", Modbus: &config.ModbusCoil{Bus: "nope"}}, `output K: bus "nope" has no poller`},
	}
	for _, c := range cases {
		_, err := NewLane(c.c, Resources{Pins: pins}, LaneOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.c, err, c.want)
		}
	}
}

// TestLane_CloseWhileEnergising: Close right after an energise command,
// while that write is still on its way (a slow slave), waits for the cut
// made after it: an older confirmation of cut does not count.
func TestLane_CloseWhileEnergising(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(3)
	l, rep := runLane(t, coilOut(), Resources{Buses: map[string]CoilBus{"io": startPoller(t, bank)}}, fast)
	l.Command(cmd("QF1", 1, true))
	eventually(t, "cut confirmed", func() bool { o := rep.last(); return o.Gen == 1 && o.Confirmed })
	bank.SetFault(3, mbslave.Fault{Delay: 150 * time.Millisecond})
	l.Command(cmd("QF1", 2, false))
	time.Sleep(20 * time.Millisecond) // the energise write is on the wire
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if bank.Coil(3, 12) {
		t.Fatal("Close returned with the coil energised by the write in flight")
	}
}
