package modbus

import (
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
)

// timedTrials runs trial until want of them have counted. A trial rests on
// a timing the simulated slave plays (a copy within the master's settle
// time): trial returns how far the slave may overshoot it (bound) and its
// failure, if any. A failed trial during which, or during the one before,
// the slave overslept by more than bound (Bank.Slip: its goroutine late on
// a loaded host) proves nothing and is logged and run again; any other
// failure fails the test. When the host cannot hold the timing for want
// trials in 5 × want attempts, the test is skipped, saying so.
func timedTrials(t *testing.T, bank *mbslave.Bank, want int, trial func(attempt, valid int) (bound time.Duration, err error)) {
	t.Helper()
	var prev time.Duration
	valid, void := 0, 0
	for attempt := 0; valid < want; attempt++ {
		if attempt == 5*want {
			t.Skipf("the host could not hold the slave's timing: %d trials void, %d of %d valid", void, valid, want)
		}
		bank.ResetSlip()
		bound, err := trial(attempt, valid)
		slip := bank.Slip()
		if err != nil {
			if worst := max(slip, prev); worst > bound {
				t.Logf("trial %d void: the slave overslept its timing by %v (bound %v): %v", attempt, worst, bound, err)
				void++
				prev = slip
				continue
			}
			t.Fatalf("trial %d (slave's slip %v, before %v, bound %v): %v", attempt, slip, prev, bound, err)
		}
		prev = slip
		valid++
	}
	if void > 0 {
		t.Logf("%d trials void (the slave overslept), %d valid", void, valid)
	}
}
