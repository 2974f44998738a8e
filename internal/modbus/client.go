package modbus

import (
	"fmt"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/config"
)

// Register tables (config key "table") and the function code that reads each.
const (
	TableHolding  = "holding"  // holding registers, FC03
	TableInput    = "input"    // input registers, FC04
	TableCoil     = "coil"     // coils, FC01
	TableDiscrete = "discrete" // discrete inputs, FC02
)

// Default per-transaction timeouts when config.Bus.Timeout is zero.
const (
	DefaultTCPTimeout = time.Second
	DefaultRTUTimeout = 500 * time.Millisecond
)

// transporter is what a bus client needs from its link.
type transporter interface {
	gmodbus.Transporter
	Close() error
}

// client is one bus's goburrow/modbus client: goburrow's packager
// (framing, CRC/MBAP, exception decoding) over our transporter. Not safe
// for concurrent use: the poller's bus goroutine owns it.
type client struct {
	bus string
	rtu *gmodbus.RTUClientHandler // packager when protocol is rtu
	tcp *gmodbus.TCPClientHandler // packager when protocol is tcp
	tr  transporter
	mb  gmodbus.Client
}

// busTimeout is the bus's per-transaction timeout, or the protocol default.
func busTimeout(bus config.Bus) time.Duration {
	if bus.Timeout > 0 {
		return bus.Timeout.D()
	}
	if bus.Protocol == "rtu" {
		return DefaultRTUTimeout
	}
	return DefaultTCPTimeout
}

// dial opens the bus's link: the serial port or the TCP connection.
// Errors wrap ErrBusDown.
func dial(bus config.Bus) (*client, error) {
	timeout := busTimeout(bus)
	c := &client{bus: bus.Name}
	switch bus.Protocol {
	case "rtu":
		port, err := OpenSerial(bus)
		if err != nil {
			return nil, err
		}
		c.rtu = gmodbus.NewRTUClientHandler(bus.Device)
		c.tr = NewRTUTransporter(port, bus.Baud, timeout)
		c.mb = gmodbus.NewClient2(c.rtu, c.tr)
	case "tcp":
		tr := NewTCPTransporter(bus.Address, timeout)
		if err := tr.Connect(); err != nil {
			return nil, err
		}
		c.tcp = gmodbus.NewTCPClientHandler(bus.Address)
		c.tr = tr
		c.mb = gmodbus.NewClient2(c.tcp, c.tr)
	default:
		return nil, fmt.Errorf("protocol %q (want tcp or rtu)", bus.Protocol)
	}
	return c, nil
}

func (c *client) close() error { return c.tr.Close() }

func (c *client) setSlave(id byte) {
	if c.rtu != nil {
		c.rtu.SlaveId = id
	} else {
		c.tcp.SlaveId = id
	}
}

// read reads count registers (2 bytes each, big-endian) or count bits
// (packed, LSB first) from table at the 0-based address addr.
func (c *client) read(slave byte, table string, addr, count uint16) ([]byte, error) {
	c.setSlave(slave)
	var b []byte
	var err error
	switch table {
	case TableHolding:
		b, err = c.mb.ReadHoldingRegisters(addr, count)
	case TableInput:
		b, err = c.mb.ReadInputRegisters(addr, count)
	case TableCoil:
		b, err = c.mb.ReadCoils(addr, count)
	case TableDiscrete:
		b, err = c.mb.ReadDiscreteInputs(addr, count)
	default:
		return nil, fmt.Errorf("table %q (want holding, input, coil or discrete)", table)
	}
	if err != nil {
		return nil, convertErr(err)
	}
	want := int(count) * 2
	if table == TableCoil || table == TableDiscrete {
		want = (int(count) + 7) / 8
	}
	if len(b) != want {
		return nil, fmt.Errorf("%w: %d data bytes for %d %s items, want %d", ErrFrame, len(b), count, table, want)
	}
	return b, nil
}

// writeCoil sets one coil (FC05) on or off.
func (c *client) writeCoil(slave byte, addr uint16, on bool) error {
	c.setSlave(slave)
	v := uint16(0x0000)
	if on {
		v = 0xFF00
	}
	_, err := c.mb.WriteSingleCoil(addr, v)
	return convertErr(err)
}
