package modbus

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// Behind an adapter that echoes every request, with a slave that answers
// in tens of milliseconds, neighbouring registers of one slave and of two
// slaves keep their own values (FC03), and coil writes (FC05, whose reply
// is a copy of the request) are confirmed by the slave's reply, not the
// echo, with echo auto and on, on a pty and with a real line's timing.
func TestRTU_EchoingAdapterAttributesValues(t *testing.T) {
	for _, mode := range []string{EchoAuto, EchoOn} {
		for _, line := range []bool{false, true} {
			t.Run(fmt.Sprintf("echo %s line %v", mode, line), func(t *testing.T) {
				bank := distinctBank(2, 30)
				bank.SetEcho(true)
				bank.SetFault(1, mbslave.Fault{Delay: 30 * time.Millisecond})
				dev := mbslavetest.StartRTU(t, bank, 19200)
				bus := rtuBus(dev, 19200, 300*time.Millisecond)
				bus.Echo = mode
				cl := openRTU(t, bus, line)
				for i := range 6 {
					on := i%2 == 0
					// A write first: with auto, before any read has shown that the adapter echoes.
					start := time.Now()
					if err := cl.WriteCoil(1, 5, on); err != nil {
						t.Fatalf("round %d: write coil: %v", i, err)
					}
					// Slave 1 confirms 30 ms late; the echo comes at once.
					if took := time.Since(start); took < 30*time.Millisecond {
						t.Fatalf("round %d: write confirmed after %v, before the slave answered: the echo was taken for the reply", i, took)
					}
					if got := bank.Coil(1, 5); got != on {
						t.Fatalf("round %d: coil 5 = %v after writing %v", i, got, on)
					}
					for _, r := range []struct {
						id   byte
						addr uint16
					}{{1, 0}, {1, 20}, {2, 0}, {1, 20}, {2, 21}} {
						data, err := cl.Read(r.id, TableHolding, r.addr, 1)
						if err != nil {
							t.Fatalf("round %d: read %d/%d: %v", i, r.id, r.addr, err)
						}
						if got, want := word(data), valueAt(r.id, r.addr); got != want {
							t.Fatalf("round %d: slave %d register %d = %d, want %d", i, r.id, r.addr, got, want)
						}
					}
				}
			})
		}
	}
}

// The adapter's echo of a write is never taken for the slave's
// confirmation: a write to a slave that does not answer times out, with
// echo on, and with auto once a read has shown the adapter echoes (or
// when the echo comes back before the slave could have answered).
func TestRTU_EchoOfAWriteIsNotItsConfirmation(t *testing.T) {
	for _, c := range []struct {
		name  string
		mode  string
		line  bool
		learn bool // read from a live slave first
	}{
		{"on", EchoOn, false, false},
		{"auto after a read", EchoAuto, false, true},
		{"auto on a line", EchoAuto, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			bank := distinctBank(1, 1)
			bank.SetEcho(true)
			// On a line, auto tells the echo by its coming back before the
			// request could have been sent: at 2400 baud that is 37 ms, a
			// margin a loaded host's pty keeps (at 19200, 4.6 ms, it did not).
			baud := 19200
			if c.line {
				baud = 2400
			}
			dev := mbslavetest.StartRTU(t, bank, baud)
			bus := rtuBus(dev, baud, 400*time.Millisecond)
			bus.Echo = c.mode
			cl := openRTU(t, bus, c.line)
			if c.learn {
				if _, err := cl.Read(1, TableHolding, 0, 1); err != nil {
					t.Fatal(err)
				}
			}
			// Unit 7 does not exist: only the echo comes back.
			if err := cl.WriteCoil(7, 3, false); !errors.Is(err, ErrTimeout) {
				t.Fatalf("write to an absent slave: err = %v, want a timeout (the echo is not a confirmation)", err)
			}
		})
	}
}

// With echo on, a reply without the echo (or a different echo: a
// collision) fails the transaction instead of being read as if echoed.
func TestRTU_EchoOnWithoutEchoFails(t *testing.T) {
	bank := distinctBank(1, 1)
	dev := mbslavetest.StartRTU(t, bank, 0)
	bus := rtuBus(dev, 19200, 200*time.Millisecond)
	bus.Echo = EchoOn
	cl := openRTU(t, bus, false)
	if _, err := cl.Read(1, TableHolding, 0, 1); !errors.Is(err, ErrFrame) {
		t.Fatalf("err = %v, want ErrFrame (echo missing)", err)
	}
}
