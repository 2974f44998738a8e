package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
)

// retainedAlarms returns the last retained …/alarms message received.
func (l *msgLog) retainedAlarms(t *testing.T) (contract.ActiveAlarms, bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.msgs) - 1; i >= 0; i-- {
		m := l.msgs[i]
		if !strings.HasSuffix(m.Topic, "/"+contract.KindAlarms) {
			continue
		}
		if err := contract.Validate(contract.KindAlarms, m.Payload); err != nil {
			t.Errorf("alarms off contract: %v: %s", err, m.Payload)
		}
		var a contract.ActiveAlarms
		if err := json.Unmarshal(m.Payload, &a); err != nil {
			t.Fatal(err)
		}
		return a, true
	}
	return contract.ActiveAlarms{}, false
}

// TestSafety_RestartReannouncesAndHolds: the agent is killed (a crash)
// with a methane cut-off active; methane falls meanwhile. On restart it
// clears the orphaned alarms with reason "restart" (same alarm_id as their
// raise), publishes the retained active set, and holds the breaker cut
// after the unclean stop although methane is normal (a crash loop cannot
// cycle it). After a clean stop with the cut-off still active, a restart
// raises it again under its old id.
func TestSafety_RestartReannouncesAndHolds(t *testing.T) {
	s := newSafetySite(t)
	c := newConfig(t, s)
	path := c.write(t, "")
	p, _ := startProc(t, hazmonBin, nil, nil, "run", "--config", path)
	if within(wait, s.energised) < 0 {
		t.Fatal("breaker never energised")
	}
	s.setCH4(0, 1.6)
	if within(10*time.Second, func() bool { return s.msgs.hasAlarm(t, "CH4-101", "cutoff", "raised") }) < 0 {
		t.Fatal("no cut-off alarm")
	}
	var raisedID string
	for _, a := range s.msgs.alarms(t) {
		if a.Level == "cutoff" && a.State == "raised" {
			raisedID = a.AlarmID
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.exited(wait)
	s.setCH4(0, 0.5)

	p, _ = startProc(t, hazmonBin, nil, nil, "run", "--config", path)
	cleared := func() bool {
		for _, a := range s.msgs.alarms(t) {
			if a.AlarmID == raisedID && a.State == "cleared" && a.Reason == "restart" {
				return true
			}
		}
		return false
	}
	if within(wait, cleared) < 0 {
		t.Fatalf("the cut-off alarm %s orphaned by the crash was not cleared with reason restart: %+v", raisedID, s.msgs.alarms(t))
	}
	if within(10*time.Second, func() bool { a, ok := s.msgs.retainedAlarms(t); return ok && len(a.Alarms) == 0 }) < 0 {
		t.Fatal("no empty retained alarm set after the restart")
	}
	time.Sleep(3 * time.Second)
	if s.breakerOn() {
		t.Fatal("breaker energised right after an unclean stop: a crash loop would cycle it")
	}
	code, out := hazmonCLI(t, "status", "--socket", c.Socket)
	if code != 0 || !strings.Contains(out, "unclean stop") {
		t.Fatalf("status does not say why the breaker is held (exit %d):\n%s", code, out)
	}

	// A clean stop with the cut-off active, then a restart: still active,
	// raised again under its old id.
	s.setCH4(0, 1.6)
	var id2 string
	if within(10*time.Second, func() bool {
		for _, a := range s.msgs.alarms(t) {
			if a.Level == "cutoff" && a.State == "raised" && a.AlarmID != raisedID {
				id2 = a.AlarmID
			}
		}
		return id2 != ""
	}) < 0 {
		t.Fatal("no second cut-off alarm")
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if !p.exited(20 * time.Second) {
		t.Fatal("no clean stop")
	}
	startProc(t, hazmonBin, nil, nil, "run", "--config", path)
	if within(wait, func() bool {
		n := 0
		for _, a := range s.msgs.alarms(t) {
			if a.AlarmID == id2 && a.State == "raised" {
				n++
			}
		}
		return n == 2
	}) < 0 {
		t.Fatalf("the cut-off active over a clean restart was not raised again under its id %s", id2)
	}
	// The retained set is republished after the alarm is recorded; it
	// may reach the subscriber after the alarm stream's message does.
	lists := func() bool {
		a, _ := s.msgs.retainedAlarms(t)
		b, _ := json.Marshal(a)
		return strings.Contains(string(b), id2)
	}
	if within(10*time.Second, lists) < 0 {
		a, _ := s.msgs.retainedAlarms(t)
		t.Fatalf("retained alarms after restart do not list %s: %+v", id2, a)
	}
}
