package modbus

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/reading"
)

// queueWrite puts a breaker-cut write (slave 9, coil 100) on the poller's
// write queue, as WriteCoil does from an output's goroutine.
func queueWrite(p *Poller) *job {
	j := &job{ctx: context.Background(), slave: 9, table: TableCoil, addr: 100, write: true, reply: make(chan jobResult, 1)}
	p.writes <- j
	return j
}

// order renders the transactions: "r0" a read at 0, "r0-2" a merged
// read, "W" the coil write.
func order(reqs []request) string {
	var out []string
	for _, rq := range reqs {
		switch {
		case rq.write:
			out = append(out, "W")
		case rq.count > 1:
			out = append(out, "r"+itoa(int(rq.addr))+"-"+itoa(int(rq.addr+rq.count-1)))
		default:
			out = append(out, "r"+itoa(int(rq.addr)))
		}
	}
	return strings.Join(out, " ")
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// A coil write queued while a transaction is in flight goes on the wire
// right after it, not after the poll's other transactions: between the
// one-by-one reads of a split request, between busy retries, before the
// retry of a missed reply, and before the readings of a merged read are
// processed.
func TestPoller_WriteWaitsForOneTransactionOnly(t *testing.T) {
	sensors := []config.Sensor{methane("A", 0, time.Second), methane("B", 2, time.Second), methane("C", 4, time.Second)}
	const timeout = 200 * time.Millisecond
	for _, c := range []struct {
		name  string
		reply func(p **Poller) func(int, request) ([]byte, time.Duration, error)
		want  string
	}{
		{"split request read one by one", func(p **Poller) func(int, request) ([]byte, time.Duration, error) {
			return func(n int, rq request) ([]byte, time.Duration, error) {
				switch {
				case rq.count > 1: // a gap register is not mapped
					return nil, 10 * time.Millisecond, &ExceptionError{Function: 3, Code: ExIllegalDataAddress}
				case rq.addr == 0 && !rq.write:
					queueWrite(*p) // the cut is decided while A is read
				}
				return value(50), 100 * time.Millisecond, nil
			}
		}, "r0-4 r0 W r2 r4"},
		{"busy retries", func(p **Poller) func(int, request) ([]byte, time.Duration, error) {
			return func(n int, rq request) ([]byte, time.Duration, error) {
				if n == 0 {
					queueWrite(*p)
					return nil, 10 * time.Millisecond, &ExceptionError{Function: 3, Code: ExSlaveDeviceBusy}
				}
				return []byte{0, 1, 0, 2, 0, 3, 0, 4, 0, 5}, 10 * time.Millisecond, nil
			}
		}, "r0-4 W r0-4"},
		{"retry of a missed reply", func(p **Poller) func(int, request) ([]byte, time.Duration, error) {
			return func(n int, rq request) ([]byte, time.Duration, error) {
				if n == 0 {
					queueWrite(*p)
					return nil, timeout, ErrTimeout
				}
				return []byte{0, 1, 0, 2, 0, 3, 0, 4, 0, 5}, 10 * time.Millisecond, nil
			}
		}, "r0-4 W r0-4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p *Poller
			s := newStepPoller(t, timeout, sensors, Options{}, c.reply(&p))
			p = s.p
			s.runFor(500 * time.Millisecond)
			if got := order(s.ln.requests()); got != c.want {
				t.Errorf("transactions %q, want %q", got, c.want)
			}
		})
	}
	t.Run("before the readings are processed", func(t *testing.T) {
		var s *stepPoller
		var atFirstReading string
		s = newStepPoller(t, timeout, sensors, Options{}, func(n int, rq request) ([]byte, time.Duration, error) {
			if n == 0 {
				queueWrite(s.p)
			}
			return []byte{0, 1, 0, 2, 0, 3, 0, 4, 0, 5}, 10 * time.Millisecond, nil
		})
		emit := s.p.emit
		s.p.emit = func(r reading.Reading) {
			if atFirstReading == "" {
				atFirstReading = order(s.ln.requests())
			}
			emit(r)
		}
		s.runFor(500 * time.Millisecond)
		if atFirstReading != "r0-4 W" {
			t.Errorf("transactions before the first reading was emitted: %q, want %q", atFirstReading, "r0-4 W")
		}
	})
}

// Real I/O: a breaker cut written while a split request of 8 sensors is
// read one by one (each read 150 ms on a slow PLC) waits for the read in
// flight only, not for the rest of the group (about 1 s).
func TestPoller_CoilWriteDuringSplitGroupRunsWithinOneTransaction(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.AddUnit(2)
	var sensors []config.Sensor
	for i := range 8 {
		bank.SetHolding(1, uint16(2*i), uint16(i))
		sensors = append(sensors, config.Sensor{ID: "S" + itoa(i), Type: "temperature", Bus: "plc", Slave: 1,
			Table: TableHolding, Address: 2 * i, Format: "uint16", Interval: ms(10000)})
	}
	bank.SetInvalid(1, mbslave.HoldingRegisters, 1, 1) // the gap after S0: the merged read draws exception 2
	bank.SetFault(1, mbslave.Fault{Delay: 150 * time.Millisecond})
	addr := mbslavetest.StartTCP(t, bank)
	p, s := startPoller(t, config.Bus{Name: "plc", Protocol: "tcp", Address: addr, Timeout: ms(1000)}, sensors)
	// Merged read (refused) and two one-by-one reads done: six to go.
	deadline := time.Now().Add(10 * time.Second)
	for bank.Requests(1) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the split group was not read")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := p.WriteCoil(ctx, 2, 100, false); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	if took > 500*time.Millisecond {
		t.Errorf("the write took %v while the split group was read; want about one 150 ms read (< 500 ms)", took)
	}
	if n := len(s.of("S7")); n != 0 {
		t.Errorf("the group was read to its end (%d readings of S7) before the write", n)
	}
	if w := bank.CoilWrites(); len(w) != 1 || w[0] != (mbslave.CoilWrite{Unit: 2, Addr: 100, On: false}) {
		t.Errorf("coil writes %+v", w)
	}
	t.Logf("write took %v", took)
}
