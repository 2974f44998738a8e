package modbus

import (
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/reading"
)

// tableBank holds the values tableSensors expect.
func tableBank() *mbslave.Bank {
	b := mbslave.NewBank()
	b.AddUnit(1)
	b.SetHolding(1, 0, 0xFFF6) // int16 -10
	b.SetInput(1, 3, 1234)
	b.SetHolding(1, 10, 0x0000, 0x3FC0) // float32 1.5, CDAB (low word first)
	b.SetCoil(1, 7, true)
	b.SetDiscrete(1, 8, true)
	b.SetDiscrete(1, 9, false)
	b.SetInput(1, 20, 65535)
	return b
}

func tableSensors(bus string) ([]config.Sensor, map[string]float64, map[string]string) {
	mk := func(id, table string, addr int, format string) config.Sensor {
		return config.Sensor{ID: id, Type: "methane", Unit: "%CH4", Bus: bus, Slave: 1, Table: table,
			Address: addr, Format: format, Interval: ms(200)}
	}
	h := mk("H0", TableHolding, 0, "int16")
	h.Scale = f64(0.1)
	in := mk("I3", TableInput, 3, "uint16")
	in.Scale = f64(0.01)
	fl := mk("F10", TableHolding, 10, "float32")
	fl.ByteOrder = "CDAB"
	nv := mk("NV20", TableInput, 20, "uint16")
	nv.NoValue = []int64{65535}
	sensors := []config.Sensor{h, in, fl,
		mk("C7", TableCoil, 7, "bool"), mk("D8", TableDiscrete, 8, "bool"), mk("D9", TableDiscrete, 9, "bool"),
		nv, mk("EX", TableHolding, 20000, "uint16")}
	values := map[string]float64{"H0": -1.0, "I3": 12.34, "F10": 1.5, "C7": 1, "D8": 1, "D9": 0}
	faults := map[string]string{"NV20": "no-value", "EX": "exception 2 (illegal data address) to function 0x03"}
	return sensors, values, faults
}

func checkTables(t *testing.T, s *sink, values map[string]float64, faults map[string]string) {
	for id, want := range values {
		rs := s.waitFor(t, id, 10*time.Second, "reading", func(rs []reading.Reading) bool { return len(rs) > 0 })
		r := rs[0]
		if !r.Valid() || math.Abs(r.Value-want) > 1e-9 || r.Err != "" {
			t.Errorf("%s: %+v, want %v", id, r, want)
		}
		if r.Unit != "%CH4" || r.Type != "methane" || time.Since(r.Time) > time.Minute {
			t.Errorf("%s: unit/type/time %+v", id, r)
		}
	}
	for id, want := range faults {
		rs := s.waitFor(t, id, 10*time.Second, "reading", func(rs []reading.Reading) bool { return len(rs) > 0 })
		r := rs[0]
		if r.Status != reading.StatusFault || !strings.Contains(r.Err, want) || r.Value != 0 {
			t.Errorf("%s: %+v, want a fault with %q", id, r, want)
		}
	}
}

// Every table, every format class, over TCP and RTU.
func TestPoller_Tables(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		addr := mbslavetest.StartTCP(t, tableBank())
		sensors, values, faults := tableSensors("plc")
		_, s := startPoller(t, config.Bus{Name: "plc", Protocol: "tcp", Address: addr, Timeout: ms(1000)}, sensors)
		checkTables(t, s, values, faults)
	})
	t.Run("rtu", func(t *testing.T) {
		dev := mbslavetest.StartRTU(t, tableBank(), 19200)
		sensors, values, faults := tableSensors("rs485")
		_, s := startPoller(t, config.Bus{Name: "rs485", Protocol: "rtu", Device: dev, Baud: 19200, Parity: "E", Timeout: ms(1000)}, sensors)
		checkTables(t, s, values, faults)
	})
}

// F1 through the poller: the exception is the reading's fault reason, in
// well under the 1 s timeout.
func TestPoller_F1ExceptionFault(t *testing.T) {
	sl, dev := newScriptSlave(t)
	go func() {
		if _, err := sl.expect(fromHex(t, "0A 01 04 A1 00 01 AC 63"), 10*time.Second); err != nil {
			t.Error(err)
			return
		}
		time.Sleep(20 * time.Millisecond)
		sl.send(fromHex(t, "0A 81 02 B0 53"))
	}()
	p, s := startPoller(t, config.Bus{Name: "b1", Protocol: "rtu", Device: dev, Baud: 9600, Parity: "E", Timeout: ms(1000)},
		[]config.Sensor{{ID: "BRK", Bus: "b1", Slave: 10, Table: TableCoil, Address: 0x04A1, Format: "bool", Interval: ms(60000)}})
	rs := s.waitFor(t, "BRK", 10*time.Second, "reading", func(rs []reading.Reading) bool { return len(rs) > 0 })
	if rs[0].Status != reading.StatusFault || !strings.Contains(rs[0].Err, "bus b1: slave 10: read coil 1185: exception 2 (illegal data address)") {
		t.Fatalf("reading %+v", rs[0])
	}
	st := p.Stats()
	if st.Requests != 1 || st.Errors != 1 || st.Timeouts != 0 || st.LastRTT >= 600*time.Millisecond || !st.Connected {
		t.Errorf("stats %+v", st)
	}
}

// F2: a busy slave is retried, its busy replies are counted, and the value
// arrives (exact frames of the case).
func TestPoller_F2BusyRetried(t *testing.T) {
	sl, dev := newScriptSlave(t)
	req := fromHex(t, "01 03 00 00 00 02 C4 0B")
	go func() {
		for _, reply := range []string{"01 83 06 C1 32", "01 83 06 C1 32", "01 03 04 00 0A 00 14 DA 3E"} {
			if _, err := sl.expect(req, 10*time.Second); err != nil {
				t.Error(err)
				return
			}
			sl.send(fromHex(t, reply))
		}
	}()
	p, _ := startPoller(t, config.Bus{Name: "b1", Protocol: "rtu", Device: dev, Baud: 9600, Parity: "E", Timeout: ms(1000)}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := p.Read(ctx, 1, TableHolding, 0, 2)
	if err != nil || hexs(got) != "00 0A 00 14" {
		t.Fatalf("Read: % X, %v; want [10, 20]", got, err)
	}
	if st := p.Stats(); st.Busy != 2 || st.Requests != 3 || st.Timeouts != 0 {
		t.Errorf("stats %+v, want 2 busy of 3 requests", st)
	}
}

// F4: slaves 1 and 2 on one port, both every 500 ms; slave 2 is dead (1 s
// timeout). Slave 1 is delayed by at most about one timeout, slave 2 backs
// off, and every request the poller sent reached the slave intact (two
// requests on the wire at once would garble each other).
func TestPoller_F4DeadSlaveBacksOff(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.AddUnit(2)
	bank.SetHolding(1, 0, 42)
	bank.SetFault(2, mbslave.Fault{Silent: true})
	dev := mbslavetest.StartRTU(t, bank, 9600)
	sensors := []config.Sensor{
		{ID: "S1", Bus: "b", Slave: 1, Table: TableHolding, Format: "uint16", Interval: ms(500)},
		{ID: "S2", Bus: "b", Slave: 2, Table: TableHolding, Format: "uint16", Interval: ms(500)},
	}
	p, s := startPoller(t, config.Bus{Name: "b", Protocol: "rtu", Device: dev, Baud: 9600, Parity: "E", Timeout: ms(1000)}, sensors)
	time.Sleep(8 * time.Second)
	st := p.Stats()
	s1, s2 := s.of("S1"), s.of("S2")

	// ~16 ticks in 8 s; each probe of slave 2 costs slave 1 about one tick.
	if len(s1) < 8 {
		t.Errorf("slave 1: %d readings in 8 s, want >= 8", len(s1))
	}
	for i, r := range s1 {
		if !r.Valid() || r.Value != 42 {
			t.Fatalf("slave 1 reading %d: %+v", i, r)
		}
		// Loose bound: one 500 ms tick + one 1 s timeout + scheduling slack.
		if i > 0 && r.Time.Sub(s1[i-1].Time) > 2500*time.Millisecond {
			t.Errorf("slave 1 readings %d and %d are %v apart", i-1, i, r.Time.Sub(s1[i-1].Time))
		}
	}
	if len(s2) < 8 {
		t.Errorf("slave 2: %d readings, want a fault reading at (almost) every tick", len(s2))
	}
	for _, r := range s2 {
		if r.Status != reading.StatusFault || !strings.Contains(r.Err, "timeout") {
			t.Fatalf("slave 2 reading %+v, want a timeout fault", r)
		}
	}
	// Backoff 1 s, 2 s, 4 s after each timeout: about 3 probes in 8 s
	// (without backoff it would be about 6).
	if n := bank.Requests(2); n < 2 || n > 4 {
		t.Errorf("slave 2 got %d requests in 8 s, want 2..4 (backing off)", n)
	}
	if got := uint64(bank.Requests(1) + bank.Requests(2)); got+1 < st.Requests || got > st.Requests+1 {
		// One request may be on the wire (counted by the slave, not yet by
		// the poller) or on its way when we read the bank.
		t.Errorf("slave saw %d well-formed requests, poller sent %d", got, st.Requests)
	}
	if st.Timeouts < 2 || st.Timeouts != uint64(bank.Requests(2)) && st.Timeouts+1 != uint64(bank.Requests(2)) {
		t.Errorf("stats %+v; slave 2 requests %d", st, bank.Requests(2))
	}
}

// A TCP bus that cannot connect emits "bus down" faults at its sensors'
// intervals and recovers once the slave is there.
func TestPoller_BusDownThenRecovers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused

	p, s := startPoller(t, config.Bus{Name: "gw", Protocol: "tcp", Address: addr, Timeout: ms(500)},
		[]config.Sensor{{ID: "L1", Bus: "gw", Slave: 1, Table: TableInput, Format: "uint16", Interval: ms(100)}})
	rs := s.waitFor(t, "L1", 10*time.Second, "3 faults", func(rs []reading.Reading) bool { return len(rs) >= 3 })
	for _, r := range rs {
		if r.Status != reading.StatusFault || !strings.Contains(r.Err, "bus gw: bus down: connect "+addr) {
			t.Fatalf("reading %+v, want a bus-down fault", r)
		}
	}
	if st := p.Stats(); st.Connected || !strings.Contains(st.LastError, "bus down") {
		t.Errorf("stats %+v", st)
	}

	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetInput(1, 0, 77)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mbslave.ServeTCP(ctx, ln, bank) }()
	defer func() { cancel(); <-done }()

	rs = s.waitFor(t, "L1", 20*time.Second, "valid reading", lastValid)
	if r := rs[len(rs)-1]; r.Value != 77 {
		t.Errorf("after recovery: %+v", r)
	}
	if st := p.Stats(); !st.Connected {
		t.Errorf("stats %+v, want connected", st)
	}
}

// A dead bus does not slow another bus.
func TestPoller_DeadBusDoesNotStopOther(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 0, 5)
	addr := mbslavetest.StartTCP(t, bank)
	_, dead := startPoller(t, config.Bus{Name: "dead", Protocol: "rtu", Device: "/dev/nonexistent-hazmon-tty", Timeout: ms(500)},
		[]config.Sensor{{ID: "D", Bus: "dead", Slave: 1, Table: TableHolding, Format: "uint16", Interval: ms(100)}})
	_, live := startPoller(t, config.Bus{Name: "live", Protocol: "tcp", Address: addr},
		[]config.Sensor{{ID: "A", Bus: "live", Slave: 1, Table: TableHolding, Format: "uint16", Interval: ms(100)}})
	time.Sleep(2 * time.Second)
	a := live.of("A")
	if len(a) < 10 { // ~20 expected
		t.Errorf("live bus: %d readings in 2 s at 100 ms", len(a))
	}
	for _, r := range a {
		if !r.Valid() || r.Value != 5 {
			t.Fatalf("live reading %+v", r)
		}
	}
	d := dead.of("D")
	if len(d) < 5 || d[0].Status != reading.StatusFault || !strings.Contains(d[0].Err, "bus down: open /dev/nonexistent-hazmon-tty") {
		t.Errorf("dead bus readings: %d, first %+v", len(d), d)
	}
}

// WriteCoil and Read go through the bus queue.
func TestPoller_WriteCoilAndRead(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(3)
	bank.SetInput(3, 100, 0xBEEF)
	addr := mbslavetest.StartTCP(t, bank)
	p, _ := startPoller(t, config.Bus{Name: "io", Protocol: "tcp", Address: addr}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WriteCoil(ctx, 3, 12, true); err != nil {
		t.Fatal(err)
	}
	if !bank.Coil(3, 12) {
		t.Error("coil 12 not set")
	}
	got, err := p.Read(ctx, 3, TableCoil, 12, 1)
	if err != nil || hexs(got) != "01" {
		t.Errorf("read coil: % X, %v", got, err)
	}
	if err := p.WriteCoil(ctx, 3, 12, false); err != nil || bank.Coil(3, 12) {
		t.Errorf("clear coil: %v, coil %v", err, bank.Coil(3, 12))
	}
	got, err = p.Read(ctx, 3, TableInput, 100, 1)
	if err != nil || hexs(got) != "BE EF" {
		t.Errorf("read input: % X, %v", got, err)
	}
	_, err = p.Read(ctx, 3, TableInput, 20000, 1)
	var ee *ExceptionError
	if !errors.As(err, &ee) || ee.Code != ExIllegalDataAddress {
		t.Errorf("read beyond the map: %v", err)
	}
}

// The schedule is a grid from the start: a late poll skips the ticks it
// missed (counted) instead of bunching them.
func TestPoller_ScheduleGrid(t *testing.T) {
	start := time.Unix(1000, 0)
	pt := &group{interval: 100 * time.Millisecond, stretch: 1, start: start, next: start}
	if n := advance(pt, start.Add(3*time.Millisecond)); n != 0 || !pt.next.Equal(start.Add(100*time.Millisecond)) {
		t.Fatalf("next = %v after start, skipped %d; want 100ms, 0", pt.next.Sub(start), n)
	}
	// Served at 100 ms + 350 ms late: ticks 200, 300 and 400 are skipped.
	n := advance(pt, start.Add(450*time.Millisecond))
	if got := pt.next.Sub(start); got != 500*time.Millisecond {
		t.Errorf("next = %v, want 500ms (on the grid, no drift)", got)
	}
	if n != 3 {
		t.Errorf("skipped = %d, want 3", n)
	}
	// A poll served exactly on its tick is not late.
	n = advance(pt, start.Add(500*time.Millisecond))
	if got := pt.next.Sub(start); got != 600*time.Millisecond || n != 0 {
		t.Errorf("next = %v, skipped %d", got, n)
	}
	// Served 90 ms late: the tick 10 ms on is skipped too, so two samples
	// are never a moment apart (a loaded host gave two readings of a
	// sensor within one millisecond, one ts on the wire).
	n = advance(pt, start.Add(690*time.Millisecond))
	if got := pt.next.Sub(start); got != 800*time.Millisecond || n != 1 {
		t.Errorf("90 ms late: next = %v, skipped %d; want 800ms, 1", got, n)
	}
	// Stretched ×3: the same rule on the stretched step.
	st := &group{interval: 100 * time.Millisecond, stretch: 3, start: start, next: start}
	if n := advance(st, start.Add(290*time.Millisecond)); !st.next.Equal(start.Add(600*time.Millisecond)) || n != 1 {
		t.Errorf("stretched, 290 ms: next = %v, skipped %d; want 600ms, 1", st.next.Sub(start), n)
	}
}

func TestNewPoller_Rejects(t *testing.T) {
	bus := config.Bus{Name: "b", Protocol: "rtu", Device: "/dev/x"}
	emit := func(reading.Reading) {}
	for _, c := range []struct {
		name string
		s    config.Sensor
		want string
	}{
		{"other bus", config.Sensor{ID: "x", Bus: "c", Slave: 1, Table: "holding", Format: "uint16"}, `belongs to bus "c"`},
		{"slave 0 on rtu", config.Sensor{ID: "x", Bus: "b", Slave: 0, Table: "holding", Format: "uint16"}, "slave 0 outside 1..247"},
		{"table", config.Sensor{ID: "x", Bus: "b", Slave: 1, Table: "fifo", Format: "uint16"}, `table "fifo"`},
		{"format on coil", config.Sensor{ID: "x", Bus: "b", Slave: 1, Table: "coil", Format: "float32"}, "want bool"},
		{"format", config.Sensor{ID: "x", Bus: "b", Slave: 1, Table: "holding", Format: "int64"}, "format"},
	} {
		_, err := NewPoller(bus, []config.Sensor{c.s}, emit, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}
