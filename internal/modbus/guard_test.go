package modbus

import (
	"fmt"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
)

// On RTU, after the on-time read A of slave 1 timed out, another holding
// read of slave 1 (B) waits until one timeout after the end of A's retry:
// a late reply to A (RTU has no transaction id) cannot be taken for B's
// answer. The retry itself, a read of another table of that slave and
// reads of other slaves go at once; on TCP (transaction ids) nothing
// waits.
func TestPoller_LateReplyGuardHoldsOtherReadsOfTheSlave(t *testing.T) {
	const timeout = 300 * time.Millisecond
	no := false
	sensors := []config.Sensor{
		methane("A", 0, time.Second), methane("B", 200, time.Second),
		{ID: "FAN", Type: "digital", Bus: "b", Slave: 1, Table: TableDiscrete, Address: 3, Format: "bool", Interval: config.Duration(time.Second),
			Rules: []config.Rule{{Level: "cutoff", Equals: &no}}},
	}
	other := methane("C", 0, time.Second)
	other.Slave = 2
	sensors = append(sensors, other)
	for _, c := range []struct {
		protocol string
		want     string // request order with send times (ms)
	}{
		{"rtu", "A@0 A@300 FAN@320 C@340 B@620"},
		{"tcp", "A@0 A@300 B@320 FAN@340 C@360"},
	} {
		t.Run(c.protocol, func(t *testing.T) {
			bus := config.Bus{Name: "b", Protocol: c.protocol, Address: "127.0.0.1:1", Device: "/dev/null", Timeout: config.Duration(timeout)}
			s := newStepPollerOn(t, bus, sensors, Options{OnTime: func(id string) bool { return id == "A" }}, func(n int, rq request) ([]byte, time.Duration, error) {
				if n == 0 {
					return nil, timeout, ErrTimeout
				}
				if rq.table == TableDiscrete {
					return []byte{1}, 20 * time.Millisecond, nil
				}
				return value(50), 20 * time.Millisecond, nil
			})
			start := s.clk.Now()
			s.runFor(900 * time.Millisecond)
			var got string
			for i, rq := range s.ln.requests() {
				id := map[string]string{"1/holding/0": "A", "1/holding/200": "B", "1/discrete/3": "FAN", "2/holding/0": "C"}[fmt.Sprintf("%d/%s/%d", rq.slave, rq.table, rq.addr)]
				if i > 0 {
					got += " "
				}
				got += fmt.Sprintf("%s@%d", id, s.ln.sent[i].Sub(start).Milliseconds())
			}
			if got != c.want {
				t.Errorf("requests %q, want %q", got, c.want)
			}
			for _, id := range []string{"A", "B", "FAN", "C"} {
				if rs, _ := s.out.of(id); len(rs) != 1 || !rs[0].Valid() {
					t.Errorf("%s: readings %+v, want one valid", id, rs)
				}
			}
		})
	}
}
