package modbus

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// A device hazmon already has open cannot be opened again: the second
// open fails at once with ErrPortInUse (and ErrBusDown, so the poller
// retries), and works again once the first is closed.
func TestSerial_SecondOpenFailsAtOnceWithPortInUse(t *testing.T) {
	_, dev := mbslavetest.PtyPair(t)
	bus := rtuBus(dev, 9600, time.Second)
	first, err := Dial(bus)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	second, err := Dial(bus)
	if err == nil {
		second.Close()
		t.Fatal("second open of the same device succeeded")
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("second open took %v, want at once", took)
	}
	if !errors.Is(err, ErrPortInUse) || !errors.Is(err, ErrBusDown) {
		t.Errorf("err = %v, want ErrPortInUse and ErrBusDown", err)
	}
	if want := "serial port " + dev + " is in use by another process (the running agent?)"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q, want %q", err, want)
	}
	first.Close()
	again, err := Dial(bus)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	again.Close()
}

// Another program reading the same tty (opened before hazmon's port, or
// by root, whom TIOCEXCL does not stop) takes some reply bytes: a
// transaction then fails, but always by its deadline; it never blocks.
func TestRTU_OtherReaderOnPortCannotHoldATransaction(t *testing.T) {
	bank := distinctBank(1, 1)
	dev := mbslavetest.StartRTU(t, bank, 0)
	other, err := mbslave.OpenPort(dev, 9600, 'N')
	if err != nil {
		t.Fatal(err)
	}
	var stolen atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64)
		for !stop.Load() { // reads for 10 ms, then leaves the line alone for 15 ms
			other.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			n, _ := other.Read(buf)
			stolen.Add(int64(n))
			time.Sleep(15 * time.Millisecond)
		}
	})
	t.Cleanup(func() { stop.Store(true); wg.Wait(); other.Close() })

	const timeout = 150 * time.Millisecond
	cl := openRTU(t, rtuBus(dev, 9600, timeout), false)
	// Quiet time before the request (the turnaround after a failure),
	// the timeout, the settle time, and slack for a loaded machine.
	bound := DefaultTurnaround + timeout + SettleTime(9600) + 400*time.Millisecond
	var ok, failed int
	for i := range 25 {
		type result struct {
			data []byte
			err  error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			data, err := cl.Read(1, TableHolding, 0, 1)
			done <- result{data, err}
		}()
		select {
		case r := <-done:
			if took := time.Since(start); took > bound {
				t.Errorf("transaction %d took %v, want <= %v", i, took, bound)
			}
			switch {
			case r.err != nil:
				failed++
			case word(r.data) != valueAt(1, 0):
				t.Errorf("transaction %d: value %d, want %d", i, word(r.data), valueAt(1, 0))
			default:
				ok++
			}
		case <-time.After(bound + 5*time.Second):
			cl.Close()
			t.Fatalf("transaction %d still running after %v: a read is blocked", i, bound+5*time.Second)
		}
	}
	t.Logf("%d replies read, %d transactions failed, %d bytes taken by the other reader", ok, failed, stolen.Load())
	if stolen.Load() == 0 || failed == 0 || ok == 0 {
		t.Fatalf("the other reader took %d bytes and %d transactions failed: the test did not exercise the race", stolen.Load(), failed)
	}
}

// Close from another goroutine ends a transaction in progress at once
// with ErrBusDown (a supervisor unsticking a bus), and later ones too.
func TestRTU_CloseEndsTransactionInProgress(t *testing.T) {
	bank := distinctBank(1, 1)
	bank.SetFault(1, mbslave.Fault{Silent: true})
	dev := mbslavetest.StartRTU(t, bank, 0)
	cl := openRTU(t, rtuBus(dev, 9600, 10*time.Second), false)
	done := make(chan error, 1)
	go func() {
		_, err := cl.Read(1, TableHolding, 0, 1)
		done <- err
	}()
	for bank.Requests(1) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	cl.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrBusDown) {
			t.Errorf("err = %v, want ErrBusDown", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Read returned %v after Close", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still running 5 s after Close (timeout 10 s)")
	}
	if _, err := cl.Read(1, TableHolding, 0, 1); !errors.Is(err, ErrBusDown) {
		t.Errorf("Read after Close: %v, want ErrBusDown", err)
	}
}
