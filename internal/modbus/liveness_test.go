package modbus

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// waitUntil polls cond every 5 ms and fails the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A transaction stuck in the transport (a read that never returns, as in
// a wedged serial driver) shows in Liveness and is reported Stalled once
// it has been in flight for more than 3 × the bus timeout; Interrupt
// closes the link from another goroutine, the stuck read returns, the
// sensor reads fault (bus down) and the poller reopens the link and reads
// again.
func TestPoller_StalledTransactionInterruptedAndReopened(t *testing.T) {
	const timeout = 50 * time.Millisecond
	stuck := newFakeLink(nil, nil)
	stuck.block = true
	healthy := newFakeLink(nil, func(int, request) ([]byte, time.Duration, error) { return value(50), 0, nil })
	var dials atomic.Int32
	s := &sink{}
	p, err := NewPoller(config.Bus{Name: "b", Protocol: "tcp", Address: "127.0.0.1:1", Timeout: config.Duration(timeout)},
		[]config.Sensor{methane("CH4", 0, 100*time.Millisecond)}, s.emit, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.dial = func(config.Bus) (link, error) {
		if dials.Add(1) == 1 {
			return stuck, nil
		}
		return healthy, nil
	}
	if p.Timeout() != timeout {
		t.Errorf("Timeout() = %v, want %v", p.Timeout(), timeout)
	}
	p.Interrupt() // no link yet: nothing to do
	if l := p.Liveness(); !l.InFlight.IsZero() || !l.LastDone.IsZero() {
		t.Errorf("liveness before Run %+v, want zero", l)
	}
	runPoller(t, p)

	waitUntil(t, 5*time.Second, "transaction in flight", func() bool { return len(stuck.requests()) > 0 })
	l := p.Liveness()
	if l.InFlight.IsZero() || l.LastDone.After(l.InFlight) {
		t.Fatalf("liveness %+v with a read stuck in the transport, want InFlight set", l)
	}
	if p.Stalled(l.InFlight.Add(StallFactor*timeout)) || !p.Stalled(l.InFlight.Add(StallFactor*timeout+time.Millisecond)) {
		t.Errorf("Stalled is not: in flight for more than %d × timeout", StallFactor)
	}
	waitUntil(t, 5*time.Second, "stall", func() bool { return p.Stalled(time.Now()) })
	if d := time.Since(l.InFlight); d < StallFactor*timeout {
		t.Errorf("stalled after %v, want > %v", d, StallFactor*timeout)
	}

	p.Interrupt()
	rs := s.waitFor(t, "CH4", 5*time.Second, "valid reading after the reopen", lastValid)
	if rs[0].Status != reading.StatusFault || !strings.Contains(rs[0].Err, "bus down") {
		t.Errorf("first reading %+v, want a bus-down fault from the interrupted read", rs[0])
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials, want 2 (reopened once)", n)
	}
	if p.Stalled(time.Now()) {
		t.Error("still stalled after the reopen")
	}
	if l2 := p.Liveness(); !l2.LastDone.After(l.InFlight) {
		t.Errorf("liveness after the reopen %+v, want LastDone after the stuck read began (%v)", l2, l.InFlight)
	}
}

// Cancelling Run closes the link, so Run returns even while a transaction
// is stuck in the transport.
func TestPoller_RunReturnsOnCancelWithATransactionStuck(t *testing.T) {
	stuck := newFakeLink(nil, nil)
	stuck.block = true
	p, err := NewPoller(config.Bus{Name: "b", Protocol: "tcp", Address: "127.0.0.1:1", Timeout: ms(50)},
		[]config.Sensor{methane("CH4", 0, 100*time.Millisecond)}, func(reading.Reading) {}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.dial = func(config.Bus) (link, error) { return stuck, nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitUntil(t, 5*time.Second, "transaction in flight", func() bool { return len(stuck.requests()) > 0 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		stuck.close()
		<-done
		t.Fatal("Run did not return within 5 s of cancel with a transaction stuck in the transport")
	}
}
