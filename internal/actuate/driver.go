package actuate

import (
	"context"
	"errors"
	"fmt"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/hazmon/hazmon/internal/modbus"
)

// CoilBus is the Modbus access an output needs: *modbus.Poller satisfies
// it. Both calls are queued onto the bus goroutine (writes ahead of reads)
// and block their caller, the output's own lane, until done or ctx ends.
type CoilBus interface {
	WriteCoil(ctx context.Context, slave byte, addr uint16, on bool) error
	Read(ctx context.Context, slave byte, table string, addr, count uint16) ([]byte, error)
}

// heartbeat is a coil on the output's slave that the lane toggles at each
// beat of the Core (safety.OutputSpec.Heartbeat), so that a PLC's
// communications watchdog can drop power when the agent goes silent.
type heartbeat struct {
	bus   CoilBus
	slave byte
	coil  uint16
	on    bool
}

func (h *heartbeat) toggle(ctx context.Context) error {
	h.on = !h.on
	if err := h.bus.WriteCoil(ctx, h.slave, h.coil, h.on); err != nil {
		return fmt.Errorf("heartbeat coil %d: %w", h.coil, err)
	}
	return nil
}

// errMismatch is wrapped when a coil reads back other than written.
var errMismatch = errors.New("read-back differs")

// state is what a driver knows of the output after an attempt.
type state struct {
	known     bool // energised is the physical state (written or read back)
	energised bool
}

// driver makes one output energised or de-energised.
type driver interface {
	// set drives the output and confirms it (coil: read back).
	set(ctx context.Context, energise bool) (state, error)
	// check confirms that an output already set still is (coil: read
	// back); errMismatch when it is not.
	check(ctx context.Context, energise bool) (state, error)
	// drifts reports whether the output can change behind hazmon's back,
	// so that check is worth calling periodically.
	drifts() bool
}

// gpioDriver is a relay on a GPIO line. Energised = line high, or low
// with active_low.
type gpioDriver struct {
	pin       pgpio.PinOut
	activeLow bool
}

func (d *gpioDriver) level(energise bool) pgpio.Level {
	return pgpio.Level(energise != d.activeLow)
}

func (d *gpioDriver) set(_ context.Context, energise bool) (state, error) {
	if err := d.pin.Out(d.level(energise)); err != nil {
		return state{}, fmt.Errorf("write %v: %w", d.level(energise), err)
	}
	return state{known: true, energised: energise}, nil
}

// check does nothing: reading back a gpioioctl output line would
// reconfigure it as an input.
func (d *gpioDriver) check(_ context.Context, energise bool) (state, error) {
	return state{known: true, energised: energise}, nil
}

func (d *gpioDriver) drifts() bool { return false }

// coilDriver is a coil on a Modbus slave (a PLC-driven breaker or a relay
// module). Energised = coil 1.
type coilDriver struct {
	bus   CoilBus
	slave byte
	coil  uint16
}

func (d *coilDriver) set(ctx context.Context, energise bool) (state, error) {
	if err := d.bus.WriteCoil(ctx, d.slave, d.coil, energise); err != nil {
		return state{}, fmt.Errorf("write coil: %w", err)
	}
	return d.readBack(ctx, energise)
}

func (d *coilDriver) readBack(ctx context.Context, energise bool) (state, error) {
	b, err := d.bus.Read(ctx, d.slave, modbus.TableCoil, d.coil, 1)
	if err != nil {
		return state{}, fmt.Errorf("read back coil: %w", err)
	}
	if len(b) != 1 {
		return state{}, fmt.Errorf("read back coil: %d data bytes, want 1", len(b))
	}
	got := b[0]&1 == 1
	st := state{known: true, energised: got}
	if got != energise {
		return st, fmt.Errorf("coil reads back %s, want %s: %w", onOff(got), onOff(energise), errMismatch)
	}
	return st, nil
}

func (d *coilDriver) check(ctx context.Context, energise bool) (state, error) {
	return d.readBack(ctx, energise)
}

func (d *coilDriver) drifts() bool { return true }

func onOff(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
