package modbus

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// startTCPServer serves bank on a loopback port until the test ends and
// returns the server (for its connection count) and its address.
func startTCPServer(t *testing.T, bank *mbslave.Bank) (*mbslave.TCPServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mbslave.TCPServer{Bank: bank}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, ln.Addr().String()
}

// An MBAP header the reply to our request cannot have (protocol id not 0,
// a length the function cannot have, another unit id) means the stream is
// out of step: the read fails with ErrBusDown and ErrFrame instead of
// decoding what follows, the connection is reopened, and the next request
// gets its own answer.
func TestTCP_ImplausibleMBAPResetsConnection(t *testing.T) {
	bank := distinctBank(1, 4)
	srv, addr := startTCPServer(t, bank)
	cl, err := Dial(config.Bus{Name: "t", Protocol: "tcp", Address: addr, Timeout: config.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	conns := 1
	for _, c := range []struct {
		name  string
		fault mbslave.Fault
	}{
		{"protocol id 1", mbslave.Fault{WrongProtocol: true}},
		{"length 2 short", mbslave.Fault{LengthSkew: -2}},
		{"length 2 long", mbslave.Fault{LengthSkew: 2}},
		{"other unit id", mbslave.Fault{WrongUnit: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bank.SetFault(1, c.fault)
			data, err := cl.Read(1, TableHolding, 0, 2)
			if !errors.Is(err, ErrBusDown) || !errors.Is(err, ErrFrame) {
				t.Fatalf("read: % X, %v; want ErrBusDown and ErrFrame", data, err)
			}
			bank.SetFault(1, mbslave.Fault{})
			data, err = cl.Read(1, TableHolding, 2, 2)
			if err != nil || word(data) != valueAt(1, 2) || word(data[2:]) != valueAt(1, 3) {
				t.Fatalf("next read: % X, %v; want %d %d", data, err, valueAt(1, 2), valueAt(1, 3))
			}
			conns++
			if got := srv.Accepted(); got != conns {
				t.Errorf("%d connections accepted, want %d (one new after the reset)", got, conns)
			}
		})
	}
}

// A reply sent twice: the copy, with the old transaction id, is skipped
// by the next request, which gets its own answer.
func TestTCP_DuplicateReplySkipped(t *testing.T) {
	bank := distinctBank(1, 2)
	bank.SetFault(1, mbslave.Fault{Duplicate: time.Millisecond})
	addr := mbslavetest.StartTCP(t, bank)
	cl, err := Dial(config.Bus{Name: "t", Protocol: "tcp", Address: addr, Timeout: config.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	for i := range 20 {
		a := uint16(i % 2)
		data, err := cl.Read(1, TableHolding, a, 1)
		if err != nil || word(data) != valueAt(1, a) {
			t.Fatalf("read %d: % X, %v; want %d", i, data, err, valueAt(1, a))
		}
		time.Sleep(2 * time.Millisecond) // let the copy arrive before the next request
	}
}

// Close from another goroutine ends a transaction in progress at once
// with ErrBusDown, and later ones too.
func TestTCP_CloseEndsTransactionInProgress(t *testing.T) {
	bank := distinctBank(1, 1)
	bank.SetFault(1, mbslave.Fault{Silent: true})
	addr := mbslavetest.StartTCP(t, bank)
	cl, err := Dial(config.Bus{Name: "t", Protocol: "tcp", Address: addr, Timeout: config.Duration(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := cl.Read(1, TableHolding, 0, 1)
		done <- err
	}()
	for bank.Requests(1) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cl.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrBusDown) {
			t.Errorf("err = %v, want ErrBusDown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still running 5 s after Close (timeout 10 s)")
	}
	if _, err := cl.Read(1, TableHolding, 0, 1); !errors.Is(err, ErrBusDown) {
		t.Errorf("Read after Close: %v, want ErrBusDown", err)
	}
}
