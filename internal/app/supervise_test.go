package app

import (
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

// The supervisor's fault for a stalled bus carries code stalled and the
// reason, and is a valid fault reading on the wire.
func TestSupervise_StallFaultCarriesCodeStalled(t *testing.T) {
	r := stallFault("plc", config.Sensor{ID: "CH4-101", Type: "methane", Unit: "%CH4"}, time.UnixMilli(1_764_403_200_000))
	if r.Valid() || r.Code != reading.CodeStalled || r.Err == "" {
		t.Fatalf("stall fault %+v, want a fault with code stalled and a reason", r)
	}
	b, err := contract.Marshal(contract.FromReading(r))
	if err != nil {
		t.Fatal(err)
	}
	if err := contract.Validate("reading", b); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
}

// fakeBus is a stallable with a transaction in flight since start (zero:
// none) and a bus timeout.
type fakeBus struct {
	start   time.Time
	timeout time.Duration
}

func (b fakeBus) Stalled(now time.Time) bool {
	return !b.start.IsZero() && now.Sub(b.start) > modbus.StallFactor*b.timeout
}
func (b fakeBus) Liveness() modbus.Liveness { return modbus.Liveness{InFlight: b.start} }
func (b fakeBus) Timeout() time.Duration    { return b.timeout }
func (b fakeBus) Interrupt()                {}

// The supervisor sleeps until a stall can first be seen: exactly to the
// instant a transaction in flight becomes stalled, StallFactor × the
// timeout with none in flight, SuperviseEvery while one is stalled; never
// shorter than SuperviseEvery nor longer than SuperviseIdle.
func TestSupervise_SleepsUntilAStallCanFirstBeSeen(t *testing.T) {
	now := time.UnixMilli(1_764_403_200_000)
	cases := []struct {
		name  string
		buses []stallable
		want  time.Duration
	}{
		{"no bus", nil, SuperviseIdle},
		{"idle 1 s bus", []stallable{fakeBus{timeout: time.Second}}, SuperviseIdle},
		{"idle 200 ms bus", []stallable{fakeBus{timeout: 200 * time.Millisecond}}, 600 * time.Millisecond},
		{"idle 10 ms bus", []stallable{fakeBus{timeout: 10 * time.Millisecond}}, SuperviseEvery},
		{"in flight 2.5 s of 1 s bus", []stallable{fakeBus{timeout: time.Second, start: now.Add(-2500 * time.Millisecond)}}, 500*time.Millisecond + time.Nanosecond},
		{"in flight 2.95 s of 1 s bus", []stallable{fakeBus{timeout: time.Second, start: now.Add(-2950 * time.Millisecond)}}, SuperviseEvery},
		{"the nearest bus counts", []stallable{fakeBus{timeout: time.Second}, fakeBus{timeout: 250 * time.Millisecond, start: now.Add(-300 * time.Millisecond)}}, 450*time.Millisecond + time.Nanosecond},
		{"stalled", []stallable{fakeBus{timeout: time.Second}, fakeBus{timeout: 100 * time.Millisecond, start: now.Add(-time.Second)}}, SuperviseEvery},
	}
	for _, c := range cases {
		if got := superviseSleep(now, c.buses); got != c.want {
			t.Errorf("%s: sleep %v, want %v", c.name, got, c.want)
		}
		if got := superviseSleep(now, c.buses); got < SuperviseEvery || got > SuperviseIdle {
			t.Errorf("%s: sleep %v outside [%v, %v]", c.name, got, SuperviseEvery, SuperviseIdle)
		}
	}
}

// TestWatchdog_IdleCoreLoopIsLive: an idle core loop runs every
// IdleTickEvery, so a short WatchdogSec (d = WatchdogSec/2 = 500 ms) must
// not count a loop 550 ms old as hung; a longer d is taken as it is.
func TestWatchdog_IdleCoreLoopIsLive(t *testing.T) {
	for _, c := range []struct {
		age, d time.Duration
		live   bool
	}{
		{550 * time.Millisecond, 500 * time.Millisecond, true},
		{safety.IdleTickEvery + safety.TickEvery, 100 * time.Millisecond, true},
		{700 * time.Millisecond, 500 * time.Millisecond, false},
		{14 * time.Second, 15 * time.Second, true},
		{16 * time.Second, 15 * time.Second, false},
	} {
		if got := loopLive(c.age, c.d); got != c.live {
			t.Errorf("loop %v old, watchdog allowing %v: live %v, want %v", c.age, c.d, got, c.live)
		}
	}
}
