package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// TestSafety_LossyLineNoFalseCutoff: the gas bus loses one reply in nine
// (a noisy RS-485 run, normal underground). For 60 s methane at 0.50 %CH4
// never cuts the breaker: a lost reply is a missed poll, not a fault. Then
// the slave dies: the breaker is cut within 2 × interval + timeout
// (fault_after 2), plus the bus poll and coil write.
func TestSafety_LossyLineNoFalseCutoff(t *testing.T) {
	s := newSafetySite(t)
	c := newConfig(t, s)
	c.Interval, c.Timeout = "500ms", "300ms"
	startProc(t, hazmonBin, nil, nil, "run", "--config", c.write(t, ""))
	if within(wait, s.energised) < 0 {
		t.Fatal("breaker never energised")
	}
	s.bank.SetFault(gasUnit, mbslave.Fault{DropEvery: 9})
	writes := len(s.bank.CoilWrites())
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if !s.breakerOn() {
			t.Fatalf("false cut-off on a line losing one reply in nine, after %v", 60*time.Second-time.Until(deadline))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, w := range s.bank.CoilWrites()[writes:] {
		if !w.On {
			t.Fatalf("breaker written cut on a lossy line: %+v", w)
		}
	}
	if s.msgs.hasAlarm(t, "CH4-101", "fault", "raised") {
		t.Fatal("a fault alarm on a line losing one reply in nine")
	}
	dropped := s.bank.Requests(gasUnit)
	s.bank.SetFault(gasUnit, mbslave.Fault{Silent: true}) // the slave dies
	diedAt := time.Now()
	bound := 2*500*time.Millisecond + 300*time.Millisecond
	took := within(10*time.Second, func() bool { return !s.breakerOn() })
	// The bound is the detection's; allow one coil write on a loaded machine.
	if took < 0 || took > bound+500*time.Millisecond {
		t.Fatalf("dead slave: breaker cut after %v, want within %v (2 × interval + timeout) + one write", took, bound)
	}
	t.Logf("60 s at 1/9 loss (%d requests): no cut; dead slave cut after %v (bound %v)", dropped, time.Since(diedAt).Round(time.Millisecond), bound)
}

// TestSafety_RTUPortTakenByAnotherProgram: a second program opens the
// agent's RS-485 port and reads it (as a careless `minicom` would; root
// ignores the port's exclusive lock). The bus is never stalled inside a
// transaction (no read is left blocking: each ends at its deadline), its
// sensors turn to faults, the breaker on the other bus is cut by the fault
// lockout, and SIGTERM ends the agent within its stop timeout with the
// breaker cut.
func TestSafety_RTUPortTakenByAnotherProgram(t *testing.T) {
	s := newSafetySite(t)
	rtuBank := mbslave.NewBank()
	rtuBank.AddUnit(gasUnit)
	rtuBank.SetHolding(gasUnit, 0, 50)
	rtuBank.SetHolding(gasUnit, 1, 30)
	dev := mbslavetest.StartRTU(t, rtuBank, 9600)
	c := newConfig(t, s)
	c.GasBus = "{name: gas, protocol: rtu, device: " + dev + ", baud: 9600, timeout: 300ms}"
	p, log := startProc(t, hazmonBin, nil, nil, "run", "--config", c.write(t, ""))
	if within(wait, s.energised) < 0 {
		t.Fatal("breaker never energised over RTU")
	}
	thief, err := os.OpenFile(dev, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("the second program cannot open the port: %v", err)
	}
	stop := make(chan struct{})
	stolen := make(chan int, 1)
	go func() { // read everything that arrives, as fast as it comes
		n, buf := 0, make([]byte, 256)
		for {
			select {
			case <-stop:
				stolen <- n
				return
			default:
			}
			_ = thief.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			k, _ := thief.Read(buf)
			n += k
		}
	}()
	defer func() { close(stop); <-stolen; thief.Close() }()
	if within(10*time.Second, func() bool { return !s.breakerOn() }) < 0 {
		t.Fatal("the breaker was not cut while its methane sensor could no longer be read")
	}
	time.Sleep(3 * time.Second) // the jam goes on
	if strings.Contains(log.String(), "bus stalled") {
		t.Fatalf("a transaction was stuck past 3 × its timeout:\n%s", tail(log.String(), 20))
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if !p.exited(15 * time.Second) {
		t.Fatal("SIGTERM did not end the agent within its 15 s stop timeout while its RS-485 port was taken")
	}
	if s.breakerOn() {
		t.Fatal("breaker energised after SIGTERM")
	}
}
