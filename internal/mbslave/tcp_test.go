package mbslave_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// tcpClient returns a goburrow TCP client for unit id at addr, closed at cleanup.
func tcpClient(t *testing.T, addr string, id byte, timeout time.Duration) modbus.Client {
	t.Helper()
	h := modbus.NewTCPClientHandler(addr)
	h.SlaveId = id
	h.Timeout = timeout
	t.Cleanup(func() { h.Close() })
	return modbus.NewClient(h)
}

// wantException fails unless err is a Modbus exception with code.
func wantException(t *testing.T, err error, code byte) {
	t.Helper()
	var me *modbus.ModbusError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v, want Modbus exception %d", err, code)
	}
	if me.ExceptionCode != code {
		t.Fatalf("exception code = %d, want %d (%v)", me.ExceptionCode, code, err)
	}
}

// rawTCP sends one Modbus TCP request (unit id, PDU) on a fresh connection
// and returns the reply's unit id and PDU.
func rawTCP(t *testing.T, addr string, id byte, pdu []byte) (byte, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := []byte{0x12, 0x34, 0, 0}
	req = binary.BigEndian.AppendUint16(req, uint16(len(pdu)+1))
	req = append(req, id)
	req = append(req, pdu...)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 7)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatalf("read MBAP header: %v", err)
	}
	if hdr[0] != 0x12 || hdr[1] != 0x34 {
		t.Fatalf("transaction id % x, want 12 34", hdr[:2])
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[4:])-1)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("read PDU: %v", err)
	}
	return hdr[6], body
}

func TestTCPRoundTrip(t *testing.T) {
	b := mbslave.NewBank()
	b.SetHolding(1, 0, 52, 3, 2090)
	b.SetHolding(1, 10, 0x4120, 0x0000) // 10.0 float32 ABCD
	b.SetInput(1, 0, 0x0000, 0x3F80)    // 1.0 float32 CDAB
	b.SetDiscrete(1, 0, true)
	b.SetDiscrete(1, 2, true)
	b.SetCoil(1, 100, true)
	addr := mbslavetest.StartTCP(t, b)
	c := tcpClient(t, addr, 1, 5*time.Second)

	got, err := c.ReadHoldingRegisters(0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0, 52, 0, 3, 0x08, 0x2A}; !slices.Equal(got, want) {
		t.Errorf("FC03 0..2 = % x, want % x", got, want)
	}
	got, err = c.ReadHoldingRegisters(10, 2)
	if err != nil || !slices.Equal(got, []byte{0x41, 0x20, 0, 0}) {
		t.Errorf("FC03 10..11 = % x, %v", got, err)
	}
	got, err = c.ReadInputRegisters(0, 2)
	if err != nil || !slices.Equal(got, []byte{0, 0, 0x3F, 0x80}) {
		t.Errorf("FC04 0..1 = % x, %v", got, err)
	}
	got, err = c.ReadDiscreteInputs(0, 3)
	if err != nil || !slices.Equal(got, []byte{0b101}) {
		t.Errorf("FC02 0..2 = %08b, %v", got, err)
	}
	got, err = c.ReadCoils(99, 10)
	if err != nil || !slices.Equal(got, []byte{0b10, 0}) {
		t.Errorf("FC01 99..108 = %08b, %v", got, err)
	}

	if _, err := c.WriteSingleCoil(100, 0x0000); err != nil {
		t.Fatal(err)
	}
	if b.Coil(1, 100) {
		t.Error("FC05 off: coil 100 still on")
	}
	if _, err := c.WriteSingleRegister(5, 0xBEEF); err != nil {
		t.Fatal(err)
	}
	if v := b.Holding(1, 5); v != 0xBEEF {
		t.Errorf("FC06: holding 5 = %#x, want 0xbeef", v)
	}
	if _, err := c.WriteMultipleRegisters(20, 2, []byte{0, 7, 0, 9}); err != nil {
		t.Fatal(err)
	}
	if b.Holding(1, 20) != 7 || b.Holding(1, 21) != 9 {
		t.Errorf("FC16: holding 20,21 = %d,%d, want 7,9", b.Holding(1, 20), b.Holding(1, 21))
	}
	if _, err := c.WriteMultipleCoils(200, 10, []byte{0b11000001, 0b10}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, false, false, false, false, true, true, false, true} {
		if got := b.Coil(1, uint16(200+i)); got != want {
			t.Errorf("FC15: coil %d = %v, want %v", 200+i, got, want)
		}
	}
	if n := b.Requests(1); n != 9 {
		t.Errorf("Requests(1) = %d, want 9", n)
	}
}

func TestTCPExceptions(t *testing.T) {
	b := mbslave.NewBank()
	b.AddUnit(1)
	b.SetInvalid(1, mbslave.HoldingRegisters, 50, 10)
	addr := mbslavetest.StartTCP(t, b)
	c := tcpClient(t, addr, 1, 5*time.Second)

	_, err := c.MaskWriteRegister(0, 0xFFFF, 0) // FC22: not served
	wantException(t, err, mbslave.ExIllegalFunction)
	_, err = c.ReadHoldingRegisters(9999, 2) // beyond size 10000
	wantException(t, err, mbslave.ExIllegalDataAddress)
	_, err = c.ReadHoldingRegisters(45, 6) // touches invalid 50
	wantException(t, err, mbslave.ExIllegalDataAddress)
	if _, err = c.ReadHoldingRegisters(40, 10); err != nil { // just below the gap
		t.Errorf("FC03 40..49: %v", err)
	}
	_, err = c.ReadCoils(10000, 1)
	wantException(t, err, mbslave.ExIllegalDataAddress)

	// Quantities the goburrow client refuses to send: raw frames.
	for _, tc := range []struct {
		name string
		pdu  []byte
		want []byte
	}{
		{"FC03 126 regs", []byte{3, 0, 0, 0, 126}, []byte{0x83, 3}},
		{"FC04 0 regs", []byte{4, 0, 0, 0, 0}, []byte{0x84, 3}},
		{"FC01 2001 coils", []byte{1, 0, 0, 0x07, 0xD1}, []byte{0x81, 3}},
		{"FC05 bad value", []byte{5, 0, 1, 0x12, 0x34}, []byte{0x85, 3}},
		{"FC16 byte count mismatch", []byte{0x10, 0, 0, 0, 2, 2, 0, 1}, []byte{0x90, 3}},
		{"FC08 diagnostics", []byte{8, 0, 0, 0, 0}, []byte{0x88, 1}},
		{"FC02 2000 ok", []byte{2, 0, 0, 0x07, 0xD0}, nil},
	} {
		_, got := rawTCP(t, addr, 1, tc.pdu)
		if tc.want == nil {
			if got[0] != 2 || got[1] != 250 {
				t.Errorf("%s: reply % x, want fc 02 with 250 bytes", tc.name, got[:2])
			}
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: reply % x, want % x", tc.name, got, tc.want)
		}
	}

	// A unit that was never added: gateway exception 0x0B.
	c9 := tcpClient(t, addr, 9, 5*time.Second)
	_, err = c9.ReadHoldingRegisters(0, 1)
	wantException(t, err, mbslave.ExGatewayTargetNoResponse)
	if n := b.Requests(9); n != 1 {
		t.Errorf("Requests(9) = %d, want 1", n)
	}
}

func TestTCPFaults(t *testing.T) {
	b := mbslave.NewBank()
	b.SetHolding(1, 0, 42)
	addr := mbslavetest.StartTCP(t, b)

	t.Run("busy twice then OK", func(t *testing.T) {
		c := tcpClient(t, addr, 1, 5*time.Second)
		b.SetFault(1, mbslave.Fault{Exception: mbslave.ExSlaveDeviceBusy, ExceptionCount: 2})
		defer b.SetFault(1, mbslave.Fault{})
		for range 2 {
			_, err := c.ReadHoldingRegisters(0, 1)
			wantException(t, err, mbslave.ExSlaveDeviceBusy)
		}
		got, err := c.ReadHoldingRegisters(0, 1)
		if err != nil || !slices.Equal(got, []byte{0, 42}) {
			t.Fatalf("third read = % x, %v; want 00 2a", got, err)
		}
	})
	t.Run("exception always", func(t *testing.T) {
		c := tcpClient(t, addr, 1, 5*time.Second)
		b.SetFault(1, mbslave.Fault{Exception: mbslave.ExIllegalDataAddress})
		defer b.SetFault(1, mbslave.Fault{})
		for range 3 {
			_, err := c.ReadHoldingRegisters(0, 1)
			wantException(t, err, mbslave.ExIllegalDataAddress)
		}
	})
	t.Run("silent", func(t *testing.T) {
		c := tcpClient(t, addr, 1, 300*time.Millisecond)
		b.SetFault(1, mbslave.Fault{Silent: true})
		defer b.SetFault(1, mbslave.Fault{})
		before := b.Requests(1)
		_, err := c.ReadHoldingRegisters(0, 1)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("err = %v, want a timeout", err)
		}
		if n := b.Requests(1) - before; n != 1 {
			t.Errorf("silent unit saw %d requests, want 1", n)
		}
	})
	t.Run("delay", func(t *testing.T) {
		b.SetFault(1, mbslave.Fault{Delay: 3 * time.Second})
		defer b.SetFault(1, mbslave.Fault{})
		_, err := tcpClient(t, addr, 1, 200*time.Millisecond).ReadHoldingRegisters(0, 1)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("delay 3s, timeout 200ms: err = %v, want a timeout", err)
		}
		b.SetFault(1, mbslave.Fault{Delay: 100 * time.Millisecond})
		start := time.Now()
		got, err := tcpClient(t, addr, 1, 10*time.Second).ReadHoldingRegisters(0, 1)
		if err != nil || !slices.Equal(got, []byte{0, 42}) {
			t.Fatalf("delay 100ms, timeout 10s: % x, %v", got, err)
		}
		if el := time.Since(start); el < 100*time.Millisecond {
			t.Errorf("reply came after %v, before the 100ms delay", el)
		}
	})
	t.Run("wrong unit", func(t *testing.T) {
		b.SetFault(1, mbslave.Fault{WrongUnit: true})
		defer b.SetFault(1, mbslave.Fault{})
		id, pdu := rawTCP(t, addr, 1, []byte{3, 0, 0, 0, 1})
		if id != 2 || !slices.Equal(pdu, []byte{3, 2, 0, 42}) {
			t.Errorf("reply unit %d pdu % x, want unit 2 pdu 03 02 00 2a", id, pdu)
		}
		if _, err := tcpClient(t, addr, 1, 5*time.Second).ReadHoldingRegisters(0, 1); err == nil {
			t.Error("goburrow accepted a reply from the wrong unit id")
		}
	})
	t.Run("drop", func(t *testing.T) {
		b.SetFault(1, mbslave.Fault{Drop: true})
		defer b.SetFault(1, mbslave.Fault{})
		_, err := tcpClient(t, addr, 1, 5*time.Second).ReadHoldingRegisters(0, 1)
		if err == nil {
			t.Fatal("read succeeded on a dropped connection")
		}
	})
	t.Run("split", func(t *testing.T) {
		b.SetFault(1, mbslave.Fault{Split: 200 * time.Millisecond})
		defer b.SetFault(1, mbslave.Fault{})
		got, err := tcpClient(t, addr, 1, 10*time.Second).ReadHoldingRegisters(0, 1)
		if err != nil || !slices.Equal(got, []byte{0, 42}) {
			t.Fatalf("split reply: % x, %v", got, err)
		}
	})
}

func TestTCPStopsWithContext(t *testing.T) {
	b := mbslave.NewBank()
	b.SetHolding(1, 0, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mbslave.ServeTCP(ctx, ln, b) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 11)); err != nil {
		t.Fatalf("reply: %v", err)
	}
	cancel() // the open client connection must not keep the server alive
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeTCP = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeTCP did not return within 10s of cancel")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after the server stopped")
	}
}
