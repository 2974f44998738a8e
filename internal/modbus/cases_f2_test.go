package modbus

import (
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// F2 through the sensors the poller publishes: slave 1 replies
// "01 83 06 C1 32" (exception 6, slave device busy) twice, then
// "01 03 04 00 0A 00 14 DA 3E". The poll retries after short waits (not the
// 1 s timeout), publishes exactly [10, 20] for the two sensors and no fault
// reading at all, counts the 2 busy replies, and the device stays online.
func TestCases_F2BusyIsNotDead(t *testing.T) {
	sl, dev := newScriptSlave(t)
	req := fromHex(t, "01 03 00 00 00 02 C4 0B")
	var firstReq time.Time
	go func() {
		for i, reply := range []string{"01 83 06 C1 32", "01 83 06 C1 32", "01 03 04 00 0A 00 14 DA 3E"} {
			at, err := sl.expect(req, 10*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			if i == 0 {
				firstReq = at
			}
			sl.send(fromHex(t, reply))
		}
	}()
	sensors := []config.Sensor{
		{ID: "A", Bus: "b1", Slave: 1, Table: TableHolding, Address: 0, Format: "uint16", Interval: ms(60000)},
		{ID: "B", Bus: "b1", Slave: 1, Table: TableHolding, Address: 1, Format: "uint16", Interval: ms(60000)},
	}
	p, s := startPoller(t, config.Bus{Name: "b1", Protocol: "rtu", Device: dev, Baud: 9600, Parity: "E", Timeout: ms(1000)}, sensors)
	a := s.waitFor(t, "A", 10*time.Second, "reading", func(rs []reading.Reading) bool { return len(rs) > 0 })
	b := s.waitFor(t, "B", 10*time.Second, "reading", func(rs []reading.Reading) bool { return len(rs) > 0 })
	got := time.Now()
	if len(a) != 1 || len(b) != 1 || !a[0].Valid() || !b[0].Valid() || a[0].Value != 10 || b[0].Value != 20 {
		t.Fatalf("readings A %+v B %+v; want exactly one valid reading each, [10, 20]", a, b)
	}
	st := p.Stats()
	if st.Busy != 2 || st.Requests != 3 || st.Errors != 2 || st.Timeouts != 0 || !st.Connected {
		t.Fatalf("stats %+v; want 2 busy of 3 requests (Errors counts busy replies too, nothing else), no timeout, still connected", st)
	}
	// The retries waited BusyWait and 2×BusyWait (150 ms), not a timeout:
	// generous bound, below 2 × the 1 s timeout it would take otherwise.
	if d := got.Sub(firstReq); d >= 2*time.Second {
		t.Errorf("value published %v after the first request; busy replies were waited out like timeouts", d)
	}
}
