package modbus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// Every fault reading the poller emits carries the code of its cause,
// beside the text: each cause scripted on the link, polled for 5 s.
func TestPoller_FaultReadingsCarryTheirCode(t *testing.T) {
	const timeout = 300 * time.Millisecond
	fail := func(err error) func(int, request) ([]byte, time.Duration, error) {
		return func(int, request) ([]byte, time.Duration, error) { return nil, 20 * time.Millisecond, err }
	}
	answer := func(v uint16) func(int, request) ([]byte, time.Duration, error) {
		return func(int, request) ([]byte, time.Duration, error) { return value(v), 20 * time.Millisecond, nil }
	}
	ranged := methane("CH4", 0, time.Second)
	ranged.Range = []float64{0, 4}
	noValue := methane("CH4", 0, time.Second)
	noValue.NoValue = []int64{65535}
	for _, c := range []struct {
		name   string
		sensor config.Sensor
		reply  func(int, request) ([]byte, time.Duration, error)
		want   reading.FaultCode
	}{
		{"no reply", methane("CH4", 0, time.Second), fail(fmt.Errorf("%w: no reply in %v", ErrTimeout, timeout)), reading.CodeTimeout},
		{"illegal data address", methane("CH4", 0, time.Second), fail(&ExceptionError{Function: 3, Code: ExIllegalDataAddress}), reading.CodeException},
		{"busy after the retries", methane("CH4", 0, time.Second), fail(&ExceptionError{Function: 3, Code: ExSlaveDeviceBusy}), reading.CodeException},
		{"gateway target failed", methane("CH4", 0, time.Second), fail(&ExceptionError{Function: 3, Code: ExGatewayTargetFailed}), reading.CodeTimeout},
		{"bad CRC", methane("CH4", 0, time.Second), fail(fmt.Errorf("%w: got 0x1234", ErrCRC)), reading.CodeCRC},
		{"malformed reply", methane("CH4", 0, time.Second), fail(fmt.Errorf("%w: short frame", ErrFrame)), reading.CodeFrame},
		{"link fails mid-transaction", methane("CH4", 0, time.Second), fail(fmt.Errorf("%w: read: connection reset", ErrBusDown)), reading.CodeBusDown},
		{"port taken", methane("CH4", 0, time.Second), fail(fmt.Errorf("%w: %w", ErrBusDown, ErrPortInUse)), reading.CodeBusDown},
		{"outside range", ranged, answer(500), reading.CodeRange},
		{"no-value code", noValue, answer(0xFFFF), reading.CodeNoValue},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStepPoller(t, timeout, []config.Sensor{c.sensor}, Options{}, c.reply)
			end := s.clk.Now().Add(5 * time.Second)
			for s.clk.Now().Before(end) {
				wait, err := s.p.turn(context.Background(), s.ln)
				if err != nil { // the link is down: Run would reopen it after a back-off
					wait = time.Second
				}
				s.clk.advance(wait)
			}
			rs, _ := s.out.of("CH4")
			faults := 0
			for _, r := range rs {
				if r.Valid() {
					t.Fatalf("valid reading %+v", r)
				}
				faults++
				if r.Code != c.want || r.Err == "" {
					t.Fatalf("fault %q with code %q, want code %q and a reason", r.Err, r.Code, c.want)
				}
			}
			if faults == 0 {
				t.Fatal("no fault reading")
			}
		})
	}
}

// The causes no link script reaches (a backed-off slave, the late-reply
// guard, a stopped poller) map like the others, and an error of no known
// kind is unknown, never a guess.
func TestFaultCode_EveryCause(t *testing.T) {
	p := &Poller{bus: config.Bus{Name: "b"}}
	now := time.Unix(1_700_000_000, 0)
	for _, c := range []struct {
		err  error
		want reading.FaultCode
	}{
		{p.backoffErr(1, &slaveState{fails: 5, until: now.Add(time.Second)}, now), reading.CodeTimeout},
		{fmt.Errorf("bus b: slave 1: read holding 0: %w", errLateReply), reading.CodeTimeout},
		{&ExceptionError{Function: 3, Code: ExGatewayPathUnavail}, reading.CodeTimeout},
		{&ExceptionError{Function: 3, Code: ExSlaveDeviceFailure}, reading.CodeException},
		{fmt.Errorf("bus b: %w", ErrClosed), reading.CodeBusDown},
		{fmt.Errorf("bus b: %w: dial tcp: refused", ErrBusDown), reading.CodeBusDown},
		{errors.New("something else"), reading.CodeUnknown},
	} {
		if got := FaultCode(c.err); got != c.want {
			t.Errorf("%v: code %q, want %q", c.err, got, c.want)
		}
	}
}
