package mbslave_test

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// rtuClient returns a goburrow RTU client for unit id on device, closed at cleanup.
func rtuClient(t *testing.T, device string, id byte, timeout time.Duration) modbus.Client {
	t.Helper()
	h := modbus.NewRTUClientHandler(device)
	h.BaudRate = 9600
	h.DataBits = 8
	h.Parity = "N"
	h.StopBits = 1
	h.SlaveId = id
	h.Timeout = timeout
	t.Cleanup(func() { h.Close() })
	return modbus.NewClient(h)
}

// rawPort opens the client end of a pty pair for raw frames, closed at cleanup.
func rawPort(t *testing.T, device string) *os.File {
	t.Helper()
	f, err := mbslave.OpenPort(device, 9600, 'N')
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// frame returns id+pdu with its CRC.
func frame(id byte, pdu ...byte) []byte {
	b := append([]byte{id}, pdu...)
	c := mbslave.CRC16(b)
	return append(b, byte(c), byte(c>>8))
}

// readFor reads from f until want bytes arrived or d passed, and returns what came.
func readFor(t *testing.T, f *os.File, want int, d time.Duration) []byte {
	t.Helper()
	var got []byte
	buf := make([]byte, 512)
	deadline := time.Now().Add(d)
	for len(got) < want {
		_ = f.SetReadDeadline(deadline)
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	return got
}

func TestCRC16(t *testing.T) {
	// Read holding 0, qty 10 from unit 1: the textbook frame 01 03 00 00 00 0A C5 CD.
	if got := frame(1, 3, 0, 0, 0, 10); !slices.Equal(got, []byte{1, 3, 0, 0, 0, 10, 0xC5, 0xCD}) {
		t.Fatalf("frame = % x, want 01 03 00 00 00 0a c5 cd", got)
	}
}

func TestRTURoundTrip(t *testing.T) {
	b := mbslave.NewBank()
	b.SetHolding(1, 0, 52, 3, 2090)
	b.SetInput(1, 0, 0x0000, 0x3F80)
	b.SetDiscrete(1, 0, true)
	b.SetHolding(2, 0, 77)
	dev := mbslavetest.StartRTU(t, b, 0)
	c := rtuClient(t, dev, 1, 5*time.Second)

	got, err := c.ReadHoldingRegisters(0, 3)
	if err != nil || !slices.Equal(got, []byte{0, 52, 0, 3, 0x08, 0x2A}) {
		t.Fatalf("FC03 0..2 = % x, %v", got, err)
	}
	got, err = c.ReadInputRegisters(0, 2)
	if err != nil || !slices.Equal(got, []byte{0, 0, 0x3F, 0x80}) {
		t.Errorf("FC04 0..1 = % x, %v", got, err)
	}
	got, err = c.ReadDiscreteInputs(0, 1)
	if err != nil || !slices.Equal(got, []byte{1}) {
		t.Errorf("FC02 0 = % x, %v", got, err)
	}
	if _, err := c.WriteSingleCoil(100, 0xFF00); err != nil || !b.Coil(1, 100) {
		t.Errorf("FC05 coil 100 on: %v, coil = %v", err, b.Coil(1, 100))
	}
	got, err = c.ReadCoils(100, 1)
	if err != nil || !slices.Equal(got, []byte{1}) {
		t.Errorf("FC01 100 = % x, %v", got, err)
	}
	if _, err := c.WriteSingleRegister(7, 1234); err != nil || b.Holding(1, 7) != 1234 {
		t.Errorf("FC06: %v, holding 7 = %d", err, b.Holding(1, 7))
	}
	if _, err := c.WriteMultipleRegisters(20, 3, []byte{0, 1, 0, 2, 0, 3}); err != nil {
		t.Fatal(err)
	}
	if b.Holding(1, 20) != 1 || b.Holding(1, 22) != 3 {
		t.Errorf("FC16: holding 20..22 = %d %d %d", b.Holding(1, 20), b.Holding(1, 21), b.Holding(1, 22))
	}
	if _, err := c.WriteMultipleCoils(0, 3, []byte{0b101}); err != nil || !b.Coil(1, 2) || b.Coil(1, 1) {
		t.Errorf("FC15: %v, coils 0..2 = %v %v %v", err, b.Coil(1, 0), b.Coil(1, 1), b.Coil(1, 2))
	}
	// Second unit on the same line.
	got, err = rtuClient(t, dev, 2, 5*time.Second).ReadHoldingRegisters(0, 1)
	if err != nil || !slices.Equal(got, []byte{0, 77}) {
		t.Errorf("unit 2 FC03 0 = % x, %v", got, err)
	}
}

func TestRTUExceptionsAndResync(t *testing.T) {
	b := mbslave.NewBank()
	b.SetHolding(1, 0, 42)
	b.SetInvalid(1, mbslave.InputRegisters, 5, 1)
	dev := mbslavetest.StartRTU(t, b, 0)
	c := rtuClient(t, dev, 1, 5*time.Second)

	_, err := c.ReadHoldingRegisters(9990, 11)
	wantException(t, err, mbslave.ExIllegalDataAddress)
	_, err = c.ReadInputRegisters(5, 1)
	wantException(t, err, mbslave.ExIllegalDataAddress)

	p := rawPort(t, dev)
	for _, tc := range []struct {
		name string
		req  []byte
		want []byte
	}{
		{"FC03 126 regs", frame(1, 3, 0, 0, 0, 126), frame(1, 0x83, 3)},
		{"FC22 unknown length", frame(1, 0x16, 0, 0, 0xFF, 0xFF, 0, 0), frame(1, 0x96, 1)},
		{"garbage then request", append([]byte{0x01, 0x03, 0xAA}, frame(1, 3, 0, 0, 0, 1)...), frame(1, 3, 2, 0, 42)},
		{"bad CRC then request", append(append(frame(1, 3, 0, 0, 0, 1)[:7], 0x00), frame(1, 6, 0, 3, 0, 9)...), frame(1, 6, 0, 3, 0, 9)},
	} {
		if _, err := p.Write(tc.req); err != nil {
			t.Fatal(err)
		}
		if got := readFor(t, p, len(tc.want), 5*time.Second); !slices.Equal(got, tc.want) {
			t.Errorf("%s: reply % x, want % x", tc.name, got, tc.want)
		}
	}
	if v := b.Holding(1, 3); v != 9 {
		t.Errorf("holding 3 = %d after resynced FC06, want 9", v)
	}

	// Unknown unit: silent on RTU, but counted.
	if _, err := p.Write(frame(9, 3, 0, 0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if got := readFor(t, p, 1, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("unit 9 (not added) replied % x", got)
	}
	if n := b.Requests(9); n != 1 {
		t.Errorf("Requests(9) = %d, want 1", n)
	}
	// Broadcast write: executed, no reply.
	if _, err := p.Write(frame(0, 6, 0, 4, 0, 5)); err != nil {
		t.Fatal(err)
	}
	if got := readFor(t, p, 1, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("broadcast got a reply % x", got)
	}
	if v := b.Holding(1, 4); v != 5 {
		t.Errorf("holding 4 = %d after broadcast FC06, want 5", v)
	}
}

func TestRTUFaults(t *testing.T) {
	// Each case gets its own pty pair so a late reply cannot leak into the next.
	for _, tc := range []struct {
		name  string
		fault mbslave.Fault
		check func(t *testing.T, c modbus.Client, p *os.File)
	}{
		{"busy twice then OK", mbslave.Fault{Exception: mbslave.ExSlaveDeviceBusy, ExceptionCount: 2},
			func(t *testing.T, c modbus.Client, _ *os.File) {
				for range 2 {
					_, err := c.ReadHoldingRegisters(0, 1)
					wantException(t, err, mbslave.ExSlaveDeviceBusy)
				}
				if got, err := c.ReadHoldingRegisters(0, 1); err != nil || !slices.Equal(got, []byte{0, 42}) {
					t.Fatalf("third read = % x, %v", got, err)
				}
			}},
		{"bad CRC", mbslave.Fault{BadCRC: true},
			func(t *testing.T, c modbus.Client, p *os.File) {
				_, err := c.ReadHoldingRegisters(0, 1)
				if err == nil || !strings.Contains(err.Error(), "crc") {
					t.Fatalf("err = %v, want a crc error", err)
				}
			}},
		{"wrong unit", mbslave.Fault{WrongUnit: true},
			func(t *testing.T, _ modbus.Client, p *os.File) {
				p.Write(frame(1, 3, 0, 0, 0, 1))
				want := frame(2, 3, 2, 0, 42)
				if got := readFor(t, p, len(want), 5*time.Second); !slices.Equal(got, want) {
					t.Fatalf("reply % x, want % x", got, want)
				}
			}},
		{"garbage", mbslave.Fault{Garbage: []byte{0xFF, 0x00}},
			func(t *testing.T, _ modbus.Client, p *os.File) {
				p.Write(frame(1, 3, 0, 0, 0, 1))
				want := append([]byte{0xFF, 0}, frame(1, 3, 2, 0, 42)...)
				if got := readFor(t, p, len(want), 5*time.Second); !slices.Equal(got, want) {
					t.Fatalf("reply % x, want % x", got, want)
				}
			}},
		{"silent", mbslave.Fault{Silent: true},
			func(t *testing.T, c modbus.Client, p *os.File) {
				p.Write(frame(1, 6, 0, 0, 0, 1))
				if got := readFor(t, p, 1, 500*time.Millisecond); len(got) != 0 {
					t.Fatalf("silent unit replied % x", got)
				}
			}},
		{"delay", mbslave.Fault{Delay: 2 * time.Second},
			func(t *testing.T, _ modbus.Client, p *os.File) {
				p.Write(frame(1, 3, 0, 0, 0, 1))
				if got := readFor(t, p, 1, 300*time.Millisecond); len(got) != 0 {
					t.Fatalf("reply % x within 300ms despite a 2s delay", got)
				}
				want := frame(1, 3, 2, 0, 42)
				if got := readFor(t, p, len(want), 10*time.Second); !slices.Equal(got, want) {
					t.Fatalf("late reply % x, want % x", got, want)
				}
			}},
		{"split", mbslave.Fault{Split: time.Second},
			func(t *testing.T, c modbus.Client, p *os.File) {
				p.Write(frame(1, 3, 0, 0, 0, 1))
				want := frame(1, 3, 2, 0, 42)
				first := readFor(t, p, 1, 5*time.Second)
				if len(first) == 0 || len(first) >= len(want) {
					t.Fatalf("first piece % x: want part of % x", first, want)
				}
				rest := readFor(t, p, len(want)-len(first), 5*time.Second)
				if got := append(first, rest...); !slices.Equal(got, want) {
					t.Fatalf("reply % x, want % x", got, want)
				}
				// goburrow reassembles the pieces.
				if got, err := c.ReadHoldingRegisters(0, 1); err != nil || !slices.Equal(got, []byte{0, 42}) {
					t.Fatalf("goburrow split read = % x, %v", got, err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mbslave.NewBank()
			b.SetHolding(1, 0, 42)
			b.SetFault(1, tc.fault)
			dev := mbslavetest.StartRTU(t, b, 0)
			p := rawPort(t, dev)
			c := rtuClient(t, dev, 1, 5*time.Second)
			tc.check(t, c, p)
		})
	}
}

func TestRTUPacing(t *testing.T) {
	// 125 registers at 1200 baud: request 8 bytes + t3.5 + reply 255 bytes is
	// 266.5 characters of 11 bits = 2.44 s on a real line. A loaded machine can
	// only make it slower, so this lower bound cannot flake.
	b := mbslave.NewBank()
	b.SetHolding(1, 0, make([]uint16, 125)...)
	dev := mbslavetest.StartRTU(t, b, 1200)
	c := rtuClient(t, dev, 1, 20*time.Second)
	start := time.Now()
	got, err := c.ReadHoldingRegisters(0, 125)
	if err != nil || len(got) != 250 {
		t.Fatalf("read 125 = %d bytes, %v", len(got), err)
	}
	wire := time.Duration(8+255)*mbslave.CharTime(1200) + mbslave.FrameGap(1200)
	if el := time.Since(start); el < wire {
		t.Errorf("transaction took %v, less than the %v wire time at 1200 baud", el, wire)
	}
	if !bytes.Equal(got, make([]byte, 250)) {
		t.Errorf("values % x, want zeros", got[:8])
	}
}

// BenchmarkRTU9600 measures FC03 transactions (10 registers) per second
// through a socat pty at a paced 9600 baud. The wire limit is about 24/s
// (8+25 bytes + t3.5 = 42 ms); goburrow's RTU client also sleeps its own
// estimate of the frame time after each write, which gives about 18/s.
func BenchmarkRTU9600(b *testing.B) {
	bank := mbslave.NewBank()
	bank.SetHolding(1, 0, make([]uint16, 10)...)
	dev := mbslavetest.StartRTU(b, bank, 9600)
	h := modbus.NewRTUClientHandler(dev)
	h.BaudRate, h.DataBits, h.Parity, h.StopBits, h.SlaveId, h.Timeout = 9600, 8, "N", 1, 1, 5*time.Second
	b.Cleanup(func() { h.Close() })
	c := modbus.NewClient(h)
	for b.Loop() {
		if _, err := c.ReadHoldingRegisters(0, 10); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}

// BenchmarkTCP measures FC03 transactions (10 registers) per second over loopback.
func BenchmarkTCP(b *testing.B) {
	bank := mbslave.NewBank()
	bank.SetHolding(1, 0, make([]uint16, 10)...)
	addr := mbslavetest.StartTCP(b, bank)
	h := modbus.NewTCPClientHandler(addr)
	h.SlaveId, h.Timeout = 1, 5*time.Second
	b.Cleanup(func() { h.Close() })
	c := modbus.NewClient(h)
	for b.Loop() {
		if _, err := c.ReadHoldingRegisters(0, 10); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}
