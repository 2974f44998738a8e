package modbus

import (
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/reading"
)

// Real I/O: a slave on a line that loses one reply in nine (mbslave drops
// every 9th) serves a methane sensor at 0.50 %CH4. Over many polls the
// sensor never reads fault: where the bus has time the lost reply is
// retried at once (Retries), else the poll is missed without a reading
// (MissedPolls) and the next one reads the value.
func TestPoller_LineLosingOneReplyInNineEmitsNoFault(t *testing.T) {
	for _, c := range []struct {
		name              string
		interval, timeout int // ms
		retried           bool
	}{
		{"retry fits before the next tick", 250, 60, true},
		{"no time for a retry: missed polls", 100, 70, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			bank := mbslave.NewBank()
			bank.SetHolding(1, 0, 50)
			bank.DropEvery(1, 9)
			addr := mbslavetest.StartTCP(t, bank)
			sensor := methane("CH4", 0, time.Duration(c.interval)*time.Millisecond)
			sensor.Bus = "gw"
			p, s := startPoller(t, config.Bus{Name: "gw", Protocol: "tcp", Address: addr, Timeout: ms(c.timeout)}, []config.Sensor{sensor})
			time.Sleep(6 * time.Second)
			st := p.Stats()
			rs := s.of("CH4")
			valid, faults := countFaults(rs)
			dropped := bank.Dropped(1)
			t.Logf("%d polls, %d valid, %d dropped replies; stats %+v", bank.Requests(1), valid, dropped, st)
			if faults != 0 {
				for _, r := range rs {
					if !r.Valid() {
						t.Errorf("fault reading %+v (one lost reply in nine is not a fault)", r)
						break
					}
				}
			}
			if dropped < 2 || valid < 6000/c.interval*3/4 {
				t.Errorf("%d replies dropped, %d valid readings: the line did not run", dropped, valid)
			}
			if c.retried && (st.Retries == 0 || st.MissedPolls > st.Retries/2) {
				t.Errorf("stats %+v: want the lost replies retried", st)
			}
			if !c.retried && (st.MissedPolls == 0 || st.Retries != 0) {
				t.Errorf("stats %+v: want missed polls counted, no retry", st)
			}
		})
	}
}

// Real I/O: a slave that dies (stops answering) has its sensor read fault
// within 2 × interval + timeout (fault_after 2, GB 50581-2010 §3.1.4),
// not sooner than its second missed poll.
func TestPoller_DyingSlaveFaultsWithinTwoIntervalsPlusTimeout(t *testing.T) {
	const iv, timeout = 300 * time.Millisecond, 100 * time.Millisecond
	bank := mbslave.NewBank()
	bank.SetHolding(1, 0, 50)
	addr := mbslavetest.StartTCP(t, bank)
	sensor := methane("CH4", 0, iv)
	sensor.Bus = "gw"
	_, s := startPoller(t, config.Bus{Name: "gw", Protocol: "tcp", Address: addr, Timeout: config.Duration(timeout)}, []config.Sensor{sensor})
	s.waitFor(t, "CH4", 5*time.Second, "3 readings", func(rs []reading.Reading) bool { return len(rs) >= 3 })
	died := time.Now()
	bank.SetFault(1, mbslave.Fault{Silent: true})
	deadline := died.Add(5 * time.Second)
	var fault, last reading.Reading
	var seen time.Time
	for seen.IsZero() && time.Now().Before(deadline) {
		for _, r := range s.of("CH4") {
			if !r.Valid() {
				fault, seen = r, time.Now()
				break
			}
			last = r
		}
		time.Sleep(2 * time.Millisecond)
	}
	if seen.IsZero() {
		t.Fatal("no fault reading within 5 s of the slave's death")
	}
	d := seen.Sub(died)
	t.Logf("fault %v after the death: %s", d, fault.Err)
	// Generous slack for a loaded machine; the bound itself is exact in
	// TestPoller_DeadSlaveFaultsWithinBound (fake clock).
	if bound := 2*iv + timeout + 200*time.Millisecond; d > bound || !strings.Contains(fault.Err, "timeout") {
		t.Errorf("fault %q %v after the death, want a timeout within 2 × %v + %v (+ slack)", fault.Err, d, iv, timeout)
	}
	if gap := fault.Time.Sub(last.Time); gap < 2*iv-50*time.Millisecond {
		t.Errorf("fault at the tick %v after the last valid reading: at the first missed poll, want the second", gap)
	}
}

// Real I/O over a TCP gateway (mbslave answers exception 11 for a unit it
// does not have, and 10 on request): a unit behind it that never answers
// is backed off like a silent one and reads fault at its second poll,
// not its first; exception 2 (an address the slave does not have) is a
// fault at once and its slave, alive, keeps being polled.
func TestPoller_GatewayUnitBackedOffIllegalAddressFaultedAtOnce(t *testing.T) {
	const iv = 200 * time.Millisecond
	bank := mbslave.NewBank()
	bank.SetSize(1, 100)
	bank.AddUnit(6)
	bank.SetFault(6, mbslave.Fault{Exception: ExGatewayPathUnavail})
	addr := mbslavetest.StartTCP(t, bank)
	mk := func(id string, slave, address int) config.Sensor {
		s := methane(id, address, iv)
		s.Bus, s.Slave = "gw", slave
		return s
	}
	start := time.Now()
	_, s := startPoller(t, config.Bus{Name: "gw", Protocol: "tcp", Address: addr, Timeout: ms(500)},
		[]config.Sensor{mk("GONE", 5, 0), mk("PATH", 6, 0), mk("BAD", 1, 500)})
	time.Sleep(4 * time.Second) // 20 ticks
	for _, c := range []struct {
		id, want  string
		slave     uint8
		firstTick int
		backedOff bool
	}{
		{"GONE", "exception 11 (gateway target failed to respond)", 5, 2, true},
		{"PATH", "exception 10 (gateway path unavailable)", 6, 2, true},
		{"BAD", "exception 2 (illegal data address)", 1, 1, false},
	} {
		rs := s.of(c.id)
		if len(rs) == 0 || rs[0].Valid() || !strings.Contains(rs[0].Err, c.want) {
			t.Errorf("%s: first reading %+v, want a fault with %q", c.id, rs, c.want)
			continue
		}
		if tick := int(rs[0].Time.Sub(start)/iv) + 1; tick != c.firstTick {
			t.Errorf("%s: first fault at poll %d, want poll %d", c.id, tick, c.firstTick)
		}
		n := bank.Requests(c.slave)
		if c.backedOff && n > 8 || !c.backedOff && n < 15 {
			t.Errorf("%s: slave %d got %d requests in 20 ticks; backed off: %v", c.id, c.slave, n, c.backedOff)
		}
		if len(rs) < 15 {
			t.Errorf("%s: %d readings in 20 ticks, want a fault at each", c.id, len(rs))
		}
	}
}
