package modbus

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

func tcpClient(t testing.TB, addr string, timeout time.Duration) (*gmodbus.TCPClientHandler, gmodbus.Client, *TCPTransporter) {
	t.Helper()
	tr := NewTCPTransporter(addr, timeout)
	t.Cleanup(func() { tr.Close() })
	h := gmodbus.NewTCPClientHandler(addr)
	return h, gmodbus.NewClient2(h, tr), tr
}

// A reply to a timed-out request carries an older transaction id: it is
// skipped, and later reads are never one behind.
func TestTCP_StaleTransactionSkipped(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 0, 111)
	bank.SetFault(1, mbslave.Fault{Delay: 1300 * time.Millisecond})
	addr := mbslavetest.StartTCP(t, bank)
	h, cl, _ := tcpClient(t, addr, time.Second)
	h.SlaveId = 1

	if _, err := cl.ReadHoldingRegisters(0, 1); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first read: err = %v, want timeout", err)
	}
	bank.SetFault(1, mbslave.Fault{})
	for i, want := range []uint16{112, 113, 114} {
		bank.SetHolding(1, 0, want)
		got, err := cl.ReadHoldingRegisters(0, 1)
		if err != nil || len(got) != 2 || uint16(got[0])<<8|uint16(got[1]) != want {
			t.Fatalf("read %d: % X, %v; want %d", i+2, got, err, want)
		}
	}
}

// A connection the slave drops is reopened by the next request.
func TestTCP_ReconnectAfterDrop(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 5, 7)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mbslave.TCPServer{Bank: bank}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	h, cl, _ := tcpClient(t, ln.Addr().String(), time.Second)
	h.SlaveId = 1
	bank.SetFault(1, mbslave.Fault{Drop: true})
	if _, err := cl.ReadHoldingRegisters(5, 1); !errors.Is(err, ErrBusDown) {
		t.Fatalf("dropped: err = %v, want bus down", err)
	}
	bank.SetFault(1, mbslave.Fault{})
	got, err := cl.ReadHoldingRegisters(5, 1)
	if err != nil || hexs(got) != "00 07" {
		t.Fatalf("after drop: % X, %v", got, err)
	}
	if n := srv.Accepted(); n != 2 {
		t.Errorf("accepted %d connections, want 2", n)
	}
}

// Exceptions come back typed; a unit the gateway does not know gives 0x0B.
func TestTCP_Exceptions(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetSize(1, 100)
	addr := mbslavetest.StartTCP(t, bank)
	h, cl, _ := tcpClient(t, addr, time.Second)
	h.SlaveId = 1
	_, err := cl.ReadInputRegisters(200, 1)
	var ee *ExceptionError
	if !errors.As(convertErr(err), &ee) || ee.Code != ExIllegalDataAddress || ee.Function != 4 {
		t.Fatalf("err = %v, want exception 2 to function 4", err)
	}
	h.SlaveId = 9
	_, err = cl.ReadInputRegisters(0, 1)
	if !errors.As(convertErr(err), &ee) || ee.Code != ExGatewayTargetFailed {
		t.Fatalf("err = %v, want exception 0x0B", err)
	}
	if got := ee.Error(); got != "exception 11 (gateway target failed to respond) to function 0x04" {
		t.Errorf("message %q", got)
	}
}
