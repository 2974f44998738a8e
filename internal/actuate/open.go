package actuate

import (
	"context"
	"fmt"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/gpio"
	"github.com/hazmon/hazmon/internal/safety"
)

// Resources are the hardware a lane may drive.
type Resources struct {
	// Pins finds GPIO lines (gpio.Host() on a board, a gpio.PinMap of
	// gpiotest pins in tests). Needed only for GPIO outputs.
	Pins gpio.Lookup
	// Buses gives the poller of each Modbus bus by config name. The
	// poller must run as long as the lane.
	Buses map[string]CoilBus
}

// NewLane opens output c and returns its lane, not yet running. A GPIO
// output is written cut before NewLane returns (the first thing the agent
// does); a coil output is written cut by Run as soon as its bus answers.
// Errors name the output: no name, both or neither of gpio and modbus, a
// missing GPIO line (wrapping gpio.ErrNotFound), an unknown bus, an
// out-of-range slave or coil, a failed first GPIO write.
func NewLane(c config.Output, res Resources, opt LaneOptions) (*Lane, error) {
	opt.defaults()
	if c.Name == "" {
		return nil, fmt.Errorf("output without a name")
	}
	l := &Lane{name: c.Name, opt: opt, wake: make(chan struct{}, 1), progress: make(chan struct{})}
	switch {
	case c.GPIO != nil && c.Modbus != nil:
		return nil, fmt.Errorf("output %s: both gpio and modbus (want one)", c.Name)
	case c.GPIO != nil:
		pin, err := gpio.Open(res.Pins, c.GPIO.Chip, c.GPIO.Line)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", c.Name, err)
		}
		l.desc = fmt.Sprintf("gpio chip %s line %d", c.GPIO.Chip, c.GPIO.Line)
		g := &gpioDriver{pin: pin, activeLow: c.GPIO.ActiveLow}
		if _, err := g.set(context.Background(), false); err != nil {
			return nil, fmt.Errorf("output %s: %s: write cut at start: %w", c.Name, l.desc, err)
		}
		l.drv = g
	case c.Modbus != nil:
		mc := c.Modbus
		bus := res.Buses[mc.Bus]
		if bus == nil {
			return nil, fmt.Errorf("output %s: bus %q has no poller", c.Name, mc.Bus)
		}
		if mc.Slave < 0 || mc.Slave > 255 {
			return nil, fmt.Errorf("output %s: slave %d out of range 0..255", c.Name, mc.Slave)
		}
		if mc.Coil < 0 || mc.Coil > 0xFFFF {
			return nil, fmt.Errorf("output %s: coil %d out of range 0..65535", c.Name, mc.Coil)
		}
		l.desc = fmt.Sprintf("bus %s slave %d coil %d", mc.Bus, mc.Slave, mc.Coil)
		l.drv = &coilDriver{bus: bus, slave: byte(mc.Slave), coil: uint16(mc.Coil)}
		if hb := c.Heartbeat; hb != nil {
			if hb.Coil < 0 || hb.Coil > 0xFFFF || hb.Coil == mc.Coil {
				return nil, fmt.Errorf("output %s: heartbeat coil %d must be 0..65535 and not the output's own coil", c.Name, hb.Coil)
			}
			l.hb = &heartbeat{bus: bus, slave: byte(mc.Slave), coil: uint16(hb.Coil)}
		}
	default:
		return nil, fmt.Errorf("output %s: neither gpio nor modbus", c.Name)
	}
	l.log = opt.Log.With("output", c.Name, "at", l.desc)
	l.cmd = initialCommand(c.Name)
	return l, nil
}

// initialCommand is a lane's wish before the Core's first command: cut.
func initialCommand(name string) safety.Command { return safety.Command{Output: name, Cut: true} }
