package modbus

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// methane returns a %CH4 sensor (scale 0.01) of slave 1 at holding addr.
func methane(id string, addr int, iv time.Duration) config.Sensor {
	return config.Sensor{ID: id, Type: "methane", Unit: "%CH4", Bus: "b", Slave: 1, Table: TableHolding,
		Address: addr, Format: "uint16", Scale: f64(0.01), Interval: config.Duration(iv)}
}

// everyNthLost answers 0.50 %CH4 in 20 ms, except that every n-th
// transaction gets no reply (a timeout of timeout).
func everyNthLost(n int, timeout time.Duration) func(int, request) ([]byte, time.Duration, error) {
	return func(i int, rq request) ([]byte, time.Duration, error) {
		if (i+1)%n == 0 {
			return nil, timeout, fmt.Errorf("%w: no reply in %v", ErrTimeout, timeout)
		}
		return value(50), 20 * time.Millisecond, nil
	}
}

func countFaults(rs []reading.Reading) (valid, faults int) {
	for _, r := range rs {
		if r.Valid() {
			valid++
		} else {
			faults++
		}
	}
	return valid, faults
}

// On a line that loses one reply in nine, a methane sensor reading 0.50
// %CH4 at 1 s (timeout 300 ms) never reads fault over 45 s: the lost
// reply is retried at once, the bus having time for a whole retry before
// the next tick, and every poll yields its value.
func TestPoller_LostReplyRetriedWhenTheBusHasTime(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := newStepPoller(t, timeout, []config.Sensor{methane("CH4", 0, time.Second)}, Options{}, everyNthLost(9, timeout))
	s.runFor(45 * time.Second)
	rs, _ := s.out.of("CH4")
	valid, faults := countFaults(rs)
	st := s.p.Stats()
	if faults != 0 || valid != 45 {
		t.Errorf("%d valid, %d fault readings in 45 polls; want 45 valid, no fault", valid, faults)
	}
	for _, r := range rs {
		if r.Valid() && r.Value != 0.5 {
			t.Fatalf("reading %+v, want 0.50", r)
		}
	}
	if st.Retries == 0 || st.Retries != st.Timeouts || st.MissedPolls != 0 {
		t.Errorf("stats %+v: want every timeout retried (Retries = Timeouts > 0), no missed poll", st)
	}
}

// When the retry does not fit before the next tick (interval 600 ms,
// timeout 500 ms), a lost reply is a missed poll: no reading at all (the
// last one stands), counted in MissedPolls, and the slave is polled again
// at the next tick (not backed off after one timeout).
func TestPoller_LostReplyWithoutTimeForARetryIsAMissedPoll(t *testing.T) {
	const timeout = 500 * time.Millisecond
	s := newStepPoller(t, timeout, []config.Sensor{methane("CH4", 0, 600*time.Millisecond)}, Options{}, everyNthLost(9, timeout))
	s.runFor(60 * time.Second)
	rs, _ := s.out.of("CH4")
	valid, faults := countFaults(rs)
	st := s.p.Stats()
	polls := len(s.ln.requests())
	if faults != 0 {
		t.Errorf("%d fault readings; want none (one lost reply in nine is not a fault)", faults)
	}
	if st.Retries != 0 || st.MissedPolls != st.Timeouts || st.MissedPolls == 0 || valid != polls-int(st.MissedPolls) {
		t.Errorf("stats %+v, %d polls, %d valid: want each timeout a missed poll without a reading, no retry", st, polls, valid)
	}
	if polls < 95 {
		t.Errorf("%d polls in 60 s at 600 ms, want every tick polled (no backoff after one timeout)", polls)
	}
}

// A slave that dies is reported within 2 × interval + timeout of its
// death with fault_after 2 (interval + timeout with fault_after 1),
// wherever in the interval it dies (GB 50581-2010 §3.1.4), also when a
// retry of the deciding poll would fit before the next tick (timeout
// 300 ms at 1 s): that poll is not retried.
func TestPoller_DeadSlaveFaultsWithinBound(t *testing.T) {
	const iv = time.Second
	for _, c := range []struct {
		fa      int
		timeout time.Duration
	}{{1, 500 * time.Millisecond}, {2, 500 * time.Millisecond}, {1, 300 * time.Millisecond}, {2, 300 * time.Millisecond}} {
		fa, timeout := c.fa, c.timeout
		for _, phase := range []time.Duration{0, 10 * time.Millisecond, 30 * time.Millisecond, 400 * time.Millisecond, 999 * time.Millisecond} {
			t.Run(fmt.Sprintf("fault_after=%d/timeout %v/died %v after a tick", fa, timeout, phase), func(t *testing.T) {
				var s *stepPoller
				var death time.Time
				sensor := methane("CH4", 0, iv)
				sensor.FaultAfter = &fa
				s = newStepPoller(t, timeout, []config.Sensor{sensor}, Options{}, func(n int, rq request) ([]byte, time.Duration, error) {
					if !death.IsZero() && !s.clk.Now().Before(death) {
						return nil, timeout, ErrTimeout
					}
					return value(50), 20 * time.Millisecond, nil
				})
				death = s.clk.Now().Add(5*iv + phase)
				s.runFor(15 * time.Second)
				rs, at := s.out.of("CH4")
				first := -1
				for i, r := range rs {
					if !r.Valid() {
						first = i
						break
					}
				}
				if first < 0 {
					t.Fatalf("no fault reading in 10 s after the slave died; readings %+v", rs)
				}
				bound := time.Duration(fa)*iv + timeout
				if d := at[first].Sub(death); d > bound || !strings.Contains(rs[first].Err, "timeout") {
					t.Errorf("first fault %q %v after the death, want a timeout within %v", rs[first].Err, d, bound)
				}
				for _, r := range rs[first:] {
					if r.Valid() {
						t.Fatalf("valid reading after the fault: %+v", r)
					}
				}
			})
		}
	}
}

// A unit behind a gateway that answers every request with exception 10
// or 11 (path unavailable, target failed to respond) is treated like a
// silent unit: a fault only at the second poll, then backed off (far
// fewer requests than ticks). Exception 2 (illegal data address) is a
// fact about the request: a fault at the first poll, and the slave, alive,
// is not backed off.
func TestPoller_GatewayExceptionIsSilenceIllegalAddressIsAFault(t *testing.T) {
	const iv, timeout = 500 * time.Millisecond, 300 * time.Millisecond
	for _, c := range []struct {
		code          byte
		firstFault    int // poll (1-based) of the first fault reading
		backedOff     bool
		wantInMessage string
	}{
		{ExGatewayPathUnavail, 2, true, "exception 10 (gateway path unavailable)"},
		{ExGatewayTargetFailed, 2, true, "exception 11 (gateway target failed to respond)"},
		{ExIllegalDataAddress, 1, false, "exception 2 (illegal data address)"},
	} {
		t.Run(fmt.Sprintf("exception %d", c.code), func(t *testing.T) {
			s := newStepPoller(t, timeout, []config.Sensor{methane("CH4", 0, iv)}, Options{}, func(int, request) ([]byte, time.Duration, error) {
				return nil, 5 * time.Millisecond, &ExceptionError{Function: 3, Code: c.code}
			})
			start := s.clk.Now()
			s.runFor(20 * time.Second) // 40 ticks
			rs, _ := s.out.of("CH4")
			if len(rs) == 0 {
				t.Fatal("no reading")
			}
			first := rs[0]
			if first.Valid() || !strings.Contains(first.Err, c.wantInMessage) {
				t.Fatalf("first reading %+v, want a fault with %q", first, c.wantInMessage)
			}
			if tick := int(first.Time.Sub(start)/iv) + 1; tick != c.firstFault {
				t.Errorf("first fault at poll %d, want poll %d", tick, c.firstFault)
			}
			n := len(s.ln.requests())
			if c.backedOff && n > 12 || !c.backedOff && n < 38 {
				t.Errorf("%d requests in 40 ticks; backed off: %v", n, c.backedOff)
			}
			if len(rs) < 38 {
				t.Errorf("%d readings in 40 ticks: a backed-off sensor still reads fault at each tick", len(rs))
			}
		})
	}
}
