package modbus

import (
	"fmt"
	"sync"
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

// Client is a Modbus master on one bus: goburrow/modbus's packager
// (framing, CRC/MBAP, exception decoding) over this package's RTU or TCP
// transporter. The Poller and the CLI (probe, scan) both use it.
//
// One transaction at a time: concurrent Read and WriteCoil calls are
// serialised. Close may be called from any goroutine; a transaction in
// progress then returns at once with an error wrapping ErrBusDown.
type Client struct {
	bus string
	rtu *gmodbus.RTUClientHandler // packager when protocol is rtu
	tcp *gmodbus.TCPClientHandler // packager when protocol is tcp
	tr  transporter

	mu sync.Mutex // one transaction at a time (the packager's slave id)
	mb gmodbus.Client
}

// client is the Poller's name for Client.
type client = Client

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

// Dial opens the bus's link: the serial port (exclusively, see
// OpenSerial) or the TCP connection, with the bus's timeout (0: the
// protocol's default). Errors wrap ErrBusDown; a serial port another
// process holds also wraps ErrPortInUse.
func Dial(bus config.Bus) (*Client, error) {
	bus.Timeout = config.Duration(busTimeout(bus))
	c := &Client{bus: bus.Name}
	switch bus.Protocol {
	case "rtu":
		port, err := OpenSerial(bus)
		if err != nil {
			return nil, err
		}
		return newRTUClient(bus, port), nil
	case "tcp":
		tr := NewTCPTransporter(bus.Address, bus.Timeout.D())
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

// newRTUClient is a client of bus over port.
func newRTUClient(bus config.Bus, port Port) *Client {
	c := &Client{bus: bus.Name, rtu: gmodbus.NewRTUClientHandler(bus.Device), tr: NewRTUTransporter(port, bus)}
	c.mb = gmodbus.NewClient2(c.rtu, c.tr)
	return c
}

// dial is Dial for the Poller.
func dial(bus config.Bus) (*client, error) { return Dial(bus) }

// Close closes the link (see Client). Safe to call more than once.
func (c *Client) Close() error { return c.tr.Close() }

func (c *Client) close() error { return c.Close() }

func (c *Client) setSlave(id byte) {
	if c.rtu != nil {
		c.rtu.SlaveId = id
	} else {
		c.tcp.SlaveId = id
	}
}

// Read reads count registers (holding, input: 2 bytes each, big-endian)
// or count bits (coil, discrete: packed, LSB first) from table at the
// 0-based address addr of slave. Errors wrap ErrTimeout, ErrCRC, ErrFrame
// or ErrBusDown, or are an *ExceptionError.
func (c *Client) Read(slave byte, table string, addr, count uint16) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
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

func (c *Client) read(slave byte, table string, addr, count uint16) ([]byte, error) {
	return c.Read(slave, table, addr, count)
}

// WriteCoil sets one coil (FC05) of slave on or off. Errors as Read's.
func (c *Client) WriteCoil(slave byte, addr uint16, on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setSlave(slave)
	v := uint16(0x0000)
	if on {
		v = 0xFF00
	}
	_, err := c.mb.WriteSingleCoil(addr, v)
	return convertErr(err)
}

func (c *Client) writeCoil(slave byte, addr uint16, on bool) error {
	return c.WriteCoil(slave, addr, on)
}
