package modbus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

func TestFrameGap(t *testing.T) {
	for _, c := range []struct {
		baud int
		want time.Duration
	}{
		{9600, 4010416 * time.Nanosecond}, // F3: 3.5 × 11 bits / 9600 = 4.01 ms
		{19200, 2005208 * time.Nanosecond},
		{38400, 1750 * time.Microsecond}, // fixed above 19200 baud
		{115200, 1750 * time.Microsecond},
	} {
		if got := FrameGap(c.baud); got != c.want {
			t.Errorf("FrameGap(%d) = %v, want %v", c.baud, got, c.want)
		}
	}
	if got := CharTime(9600); got != 1145833*time.Nanosecond { // 1.146 ms a character at 9600 8E1
		t.Errorf("CharTime(9600) = %v", got)
	}
}

func TestCRC(t *testing.T) {
	for _, s := range []string{"0A 01 04 A1 00 01 AC 63", "0A 81 02 B0 53", "01 83 02 C0 F1",
		"01 83 06 C1 32", "01 03 04 00 0A 00 14 DA 3E"} {
		if !crcOK(fromHex(t, s)) {
			t.Errorf("CRC of %s not accepted", s)
		}
	}
	if crcOK(fromHex(t, "0A 81 02 B0 54")) {
		t.Error("bad CRC accepted")
	}
}

// F1: an exception reply returns as soon as it is complete, not after the
// timeout, also when it arrives in pieces.
func TestRTU_F1ExceptionReturnsAtOnce(t *testing.T) {
	for _, c := range []struct {
		name       string
		slave      byte
		fc         byte
		addr       uint16
		req, reply string
		split      int // send the reply in two pieces at this byte
	}{
		{"coils", 0x0A, 1, 0x04A1, "0A 01 04 A1 00 01 AC 63", "0A 81 02 B0 53", 0},
		{"coils split", 0x0A, 1, 0x04A1, "0A 01 04 A1 00 01 AC 63", "0A 81 02 B0 53", 2},
		{"holding", 0x01, 3, 0x0000, "01 03 00 00 00 01 84 0A", "01 83 02 C0 F1", 0},
		{"holding split", 0x01, 3, 0x0000, "01 03 00 00 00 01 84 0A", "01 83 02 C0 F1", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			sl, dev := newScriptSlave(t)
			h, cl, _ := rtuClient(t, dev, 9600, time.Second)
			h.SlaveId = c.slave
			go func() {
				if _, err := sl.expect(fromHex(t, c.req), 5*time.Second); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(20 * time.Millisecond)
				reply := fromHex(t, c.reply)
				if c.split > 0 {
					sl.send(reply[:c.split])
					time.Sleep(5 * time.Millisecond)
					reply = reply[c.split:]
				}
				sl.send(reply)
			}()
			start := time.Now()
			var err error
			if c.fc == 1 {
				_, err = cl.ReadCoils(c.addr, 1)
			} else {
				_, err = cl.ReadHoldingRegisters(c.addr, 1)
			}
			took := time.Since(start)
			var ee *ExceptionError
			if !errors.As(convertErr(err), &ee) || ee.Code != 2 || ee.Function != c.fc {
				t.Fatalf("err = %v, want exception 2 to function %d", err, c.fc)
			}
			if !strings.Contains(ee.Error(), "exception 2 (illegal data address)") {
				t.Errorf("message %q", ee.Error())
			}
			// ~20 ms on the wire; the bus timeout is 1 s.
			if took >= 600*time.Millisecond {
				t.Errorf("exception took %v, want well under the 1s timeout", took)
			}
		})
	}
}

// F3: at 9600 baud the next request starts no earlier than t3.5 = 4.01 ms
// after the previous reply ended, although it is queued at once.
func TestRTU_F3FrameGap(t *testing.T) {
	sl, dev := newScriptSlave(t)
	h, cl, _ := rtuClient(t, dev, 9600, time.Second)
	ends := make(chan time.Time, 1)
	go func() {
		if _, err := sl.expect(fromHex(t, "01 03 00 00 00 02 C4 0B"), 5*time.Second); err != nil {
			t.Error(err)
			return
		}
		end, _ := sl.send(fromHex(t, "01 03 04 00 0A 00 14 DA 3E"))
		ends <- end
	}()
	h.SlaveId = 1
	got, err := cl.ReadHoldingRegisters(0, 2)
	if err != nil || hexs(got) != "00 0A 00 14" {
		t.Fatalf("read slave 1: % X, %v", got, err)
	}
	next := make(chan time.Time, 1)
	go func() {
		first, err := sl.expect(fromHex(t, "02 03 00 00 00 01 84 39"), 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		next <- first
		sl.send(fromHex(t, "02 83 02 C0 F1")) // any reply ends the transaction
	}()
	h.SlaveId = 2
	cl.ReadHoldingRegisters(0, 1)
	gap := (<-next).Sub(<-ends)
	// Lower bound only: a loaded machine can make the gap longer, never shorter.
	if gap < FrameGap(9600) {
		t.Errorf("request to slave 2 started %v after slave 1's reply ended, want >= %v", gap, FrameGap(9600))
	}
}

func withCRC(b ...byte) []byte {
	c := crc16(b)
	return append(b, byte(c), byte(c>>8))
}

// A reply that arrives after its request timed out must never be taken as
// the answer to the next request (goburrow's transporter does take it).
func TestRTU_LateReplyNeverAnswersNext(t *testing.T) {
	t.Run("other slave", func(t *testing.T) {
		bank := mbslave.NewBank()
		bank.AddUnit(1)
		bank.AddUnit(2)
		bank.SetHolding(1, 0, 111)
		bank.SetHolding(2, 0, 222)
		bank.SetFault(1, mbslave.Fault{Delay: 1300 * time.Millisecond})
		dev := mbslavetest.StartRTU(t, bank, 38400)
		h, cl, _ := rtuClient(t, dev, 38400, time.Second)

		h.SlaveId = 1
		if _, err := cl.ReadHoldingRegisters(0, 1); !errors.Is(err, ErrTimeout) {
			t.Fatalf("slave 1: err = %v, want timeout", err)
		}
		// Slave 1's late reply (111) arrives while we wait for slave 2.
		h.SlaveId = 2
		got, err := cl.ReadHoldingRegisters(0, 1)
		if err != nil || hexs(got) != "00 DE" {
			t.Fatalf("slave 2: % X, %v; want 00 DE (222)", got, err)
		}
		bank.SetFault(1, mbslave.Fault{})
		bank.SetHolding(1, 0, 112)
		h.SlaveId = 1
		got, err = cl.ReadHoldingRegisters(0, 1)
		if err != nil || hexs(got) != "00 70" {
			t.Fatalf("slave 1 again: % X, %v; want 00 70 (112)", got, err)
		}
	})
	t.Run("same slave stale input", func(t *testing.T) {
		sl, dev := newScriptSlave(t)
		h, cl, _ := rtuClient(t, dev, 9600, 300*time.Millisecond)
		h.SlaveId = 1
		req := fromHex(t, "01 03 00 00 00 01 84 0A")
		go func() {
			if _, err := sl.expect(req, 5*time.Second); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(400 * time.Millisecond) // after the client's 300 ms timeout
			sl.send(withCRC(1, 3, 2, 0, 111))
			if _, err := sl.expect(req, 5*time.Second); err != nil {
				t.Error(err)
				return
			}
			sl.send(withCRC(1, 3, 2, 0, 112))
		}()
		if _, err := cl.ReadHoldingRegisters(0, 1); !errors.Is(err, ErrTimeout) {
			t.Fatalf("first read: err = %v, want timeout", err)
		}
		time.Sleep(400 * time.Millisecond) // the late 111 is now waiting in the input
		got, err := cl.ReadHoldingRegisters(0, 1)
		if err != nil || hexs(got) != "00 70" {
			t.Fatalf("second read: % X, %v; want 00 70 (112), not the stale 111", got, err)
		}
	})
}

// Faults injected by the slave: damaged, misaddressed, noisy and split replies.
func TestRTU_Faults(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 0, 0x1234)
	dev := mbslavetest.StartRTU(t, bank, 38400)
	h, cl, _ := rtuClient(t, dev, 38400, 800*time.Millisecond)
	h.SlaveId = 1
	for _, c := range []struct {
		name  string
		fault mbslave.Fault
		want  error // nil: the value 0x1234
	}{
		{"bad CRC", mbslave.Fault{BadCRC: true}, ErrCRC},
		{"wrong unit", mbslave.Fault{WrongUnit: true}, ErrTimeout},
		{"garbage first", mbslave.Fault{Garbage: []byte{0xFF, 0x01, 0x03, 0x00}}, nil},
		{"split reply", mbslave.Fault{Split: 30 * time.Millisecond}, nil},
		{"healthy", mbslave.Fault{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			bank.SetFault(1, c.fault)
			got, err := cl.ReadHoldingRegisters(0, 1)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("err = %v, want %v", err, c.want)
				}
				return
			}
			if err != nil || hexs(got) != "12 34" {
				t.Fatalf("got % X, %v; want 12 34", got, err)
			}
		})
	}
}
