package actuate

import (
	"sync"
	"testing"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/gpio"
	"github.com/hazmon/hazmon/internal/mbslave"
)

// logPin is a gpiotest pin that records every level written.
type logPin struct {
	*gpiotest.Pin
	mu     sync.Mutex
	writes []pgpio.Level
}

func (p *logPin) Out(l pgpio.Level) error {
	p.mu.Lock()
	p.writes = append(p.writes, l)
	p.mu.Unlock()
	return p.Pin.Out(l)
}

func (p *logPin) written() []pgpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pgpio.Level(nil), p.writes...)
}

// TestReleaseHandsOver: a config reload hands the outputs to a new Manager
// without switching them: Release leaves the hardware as it is and reports
// the wanted states; a Manager started with Options.Restored never writes
// a restored relay low nor a restored coil 0 on its way in.
func TestReleaseHandsOver(t *testing.T) {
	k1 := &logPin{Pin: &gpiotest.Pin{N: "GPIO20", Num: 20}}
	k2 := &logPin{Pin: &gpiotest.Pin{N: "GPIO21", Num: 21}}
	pins := gpio.PinMap{{Chip: "gpiochip0", Line: 20}: k1, {Chip: "gpiochip0", Line: 21}: k2}
	bank := mbslave.NewBank()
	bank.SetCoil(1, 100, false)
	p := startPoller(t, bank)
	outs := []config.Output{
		{Name: "K1", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 20}},
		{Name: "K2", GPIO: &config.GPIOOut{Chip: "gpiochip0", Line: 21}},
		{Name: "BRK", Modbus: &config.ModbusCoil{Bus: "b1", Slave: 1, Coil: 100}},
	}
	opt := Options{Pins: pins, Buses: map[string]CoilBus{"b1": p}}
	old, err := NewManager(outs, opt)
	if err != nil {
		t.Fatal(err)
	}
	old.Apply(change("K1", false))
	old.Apply(change("BRK", false))
	eventually(t, "K1 energised", func() bool { return level(k1.Pin) == pgpio.High })
	eventually(t, "BRK coil 1", func() bool { return bank.Coil(1, 100) })

	if err := old.Release(t.Context(), func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if level(k1.Pin) != pgpio.High || !bank.Coil(1, 100) {
		t.Fatal("Release switched an output")
	}
	before := len(k1.written())
	opt.Restored = map[string]bool{"K1": true, "BRK": true}
	m := newManager(t, outs, opt)
	for _, l := range k1.written()[before:] {
		if l != pgpio.High {
			t.Fatalf("K1 written %v during the hand-over", l)
		}
	}
	if level(k2.Pin) != pgpio.Low {
		t.Fatal("K2 not cut by the new manager")
	}
	eventually(t, "BRK settled energised", func() bool { s := stateOf(m, "BRK"); return s.Settled && s.Energised })
	if !bank.Coil(1, 100) {
		t.Fatal("BRK coil written 0 during the hand-over")
	}
	old.Apply(change("K1", true)) // ignored after Release
	if level(k1.Pin) != pgpio.High {
		t.Fatal("a released manager still drives its outputs")
	}
}

// TestReleaseCutsWhatIsNotHandedOver: an output the new config removes or
// moves is cut and confirmed by Release, never left energised without an
// owner.
func TestReleaseCutsWhatIsNotHandedOver(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	p := startPoller(t, bank)
	outs := []config.Output{
		{Name: "A", Modbus: &config.ModbusCoil{Bus: "b1", Slave: 1, Coil: 100}},
		{Name: "B", Modbus: &config.ModbusCoil{Bus: "b1", Slave: 1, Coil: 101}},
	}
	m, err := NewManager(outs, Options{Buses: map[string]CoilBus{"b1": p}})
	if err != nil {
		t.Fatal(err)
	}
	m.Apply(change("A", false))
	m.Apply(change("B", false))
	eventually(t, "A and B energised", func() bool { return bank.Coil(1, 100) && bank.Coil(1, 101) })
	if err := m.Release(t.Context(), func(name string) bool { return name == "A" }); err != nil {
		t.Fatal(err)
	}
	if !bank.Coil(1, 100) {
		t.Fatal("handed-over output A was switched")
	}
	if bank.Coil(1, 101) {
		t.Fatal("output B, not handed over, left energised")
	}
}
