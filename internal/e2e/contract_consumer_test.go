package e2e

import (
	"encoding/json"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
)

// consumer is a platform consumer written from the README's contract
// alone: it keeps the latest retained message of each kind and every
// message of the streams, and rebuilds the site from them.
type consumer struct {
	log *msgLog
}

// latest returns the last message of kind decoded into v.
func (c consumer) latest(t *testing.T, kind string, v any) bool {
	t.Helper()
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	for i := len(c.log.msgs) - 1; i >= 0; i-- {
		m := c.log.msgs[i]
		if strings.HasSuffix(m.Topic, "/"+kind) {
			if err := contract.Validate(kind, m.Payload); err != nil {
				t.Errorf("%s off contract: %v", kind, err)
			}
			return json.Unmarshal(m.Payload, v) == nil
		}
	}
	return false
}

// all decodes every message of kind with f.
func (c consumer) all(t *testing.T, kind string, f func([]byte)) {
	t.Helper()
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	for _, m := range c.log.msgs {
		if strings.HasSuffix(m.Topic, "/"+kind) {
			if err := contract.Validate(kind, m.Payload); err != nil {
				t.Errorf("%s off contract: %v: %s", kind, err, m.Payload)
			}
			f(m.Payload)
		}
	}
}

// TestContract_ConsumerRebuildsTheSite: from the retained topics and the
// streams only, a consumer rebuilds CH4-101's unit, range, limits in force
// and cut-off area, the cut-off episode's maximum and duration, a
// statistics window that matches the telemetry it received (to 0.01), and
// after an agent restart the alarms still active.
func TestContract_ConsumerRebuildsTheSite(t *testing.T) {
	s := newSafetySite(t)
	c := newConfig(t, s)
	c.Extra = "stats: {interval: 10s}\n"
	path := c.write(t, "")
	p, _ := startProc(t, hazmonBin, nil, nil, "run", "--config", path)
	cons := consumer{s.msgs}
	if within(wait, s.energised) < 0 {
		t.Fatal("breaker never energised")
	}
	var pts contract.Points
	if within(10*time.Second, func() bool { return cons.latest(t, contract.KindPoints, &pts) }) < 0 {
		t.Fatal("no point registry")
	}
	var ch4 *contract.PointSensor
	for i := range pts.Sensors {
		if pts.Sensors[i].ID == "CH4-101" {
			ch4 = &pts.Sensors[i]
		}
	}
	if ch4 == nil || ch4.Unit != "%CH4" || len(ch4.Range) != 2 || ch4.Range[1] != 4 || len(ch4.Cuts) != 1 || ch4.Cuts[0] != "breaker-3" {
		t.Fatalf("CH4-101 in the registry: %+v", ch4)
	}
	var cutLimit, restore float64
	for _, l := range ch4.Limits {
		if l.Level == "cutoff" {
			cutLimit, restore = *l.Limit, *l.Restore
		}
	}
	if cutLimit != 1.5 || restore != 1.0 {
		t.Fatalf("cut-off in force %v, restore %v (want the coal-face 1.5 / 1.0)", cutLimit, restore)
	}

	// An excursion of about 2 s at 1.60, then back to 0.40.
	s.setCH4(0, 1.60)
	start := time.Now()
	time.Sleep(2 * time.Second)
	s.setCH4(0, 0.40)
	took := time.Since(start)
	var ep *contract.Episode
	within(10*time.Second, func() bool {
		cons.all(t, contract.KindAlarm, func(b []byte) {
			var a contract.Alarm
			if json.Unmarshal(b, &a) == nil && a.Sensor == "CH4-101" && a.Level == "cutoff" && a.State == "cleared" {
				ep = a.Episode
			}
		})
		return ep != nil
	})
	if ep == nil || ep.Max == nil || *ep.Max != 1.6 || math.Abs(ep.DurationS-took.Seconds()) > 0.6 || ep.CutS["breaker-3"] <= 0 {
		t.Fatalf("episode %+v, want max 1.6 and about %.1f s", ep, took.Seconds())
	}

	// A statistics window matches what the consumer saw on telemetry.
	var win contract.Stats
	if within(45*time.Second, func() bool {
		found := false
		cons.all(t, contract.KindStats, func(b []byte) {
			var st contract.Stats
			if json.Unmarshal(b, &st) == nil && st.FromTS <= start.UnixMilli() && start.UnixMilli() < st.ToTS && !found {
				win, found = st, true
			}
		})
		return found
	}) < 0 {
		t.Fatal("no statistics window covering the excursion")
	}
	// The telemetry of the window may still be on its way: wait for a
	// reading sampled well after its end.
	within(20*time.Second, func() bool {
		late := false
		cons.all(t, contract.KindTelemetry, func(b []byte) {
			var tm struct{ Readings []contract.Reading }
			if json.Unmarshal(b, &tm) == nil {
				for _, r := range tm.Readings {
					late = late || r.TS > win.ToTS+1000
				}
			}
		})
		return late
	})
	var n int
	var sum, mx, mn float64
	mn = math.Inf(1)
	cons.all(t, contract.KindTelemetry, func(b []byte) {
		var tm contract.Telemetry
		if json.Unmarshal(b, &tm) != nil {
			return
		}
		for _, raw := range tm.Readings {
			var r contract.Reading
			if json.Unmarshal(raw, &r) != nil || r.Sensor != "CH4-101" || r.Value == nil || r.TS < win.FromTS || r.TS >= win.ToTS {
				continue
			}
			n++
			sum += *r.Value
			mx, mn = math.Max(mx, *r.Value), math.Min(mn, *r.Value)
		}
	})
	got := win.Sensors["CH4-101"]
	if got.Count != n || got.Max == nil || math.Abs(*got.Max-mx) > 0.01 || math.Abs(*got.Min-mn) > 0.01 || math.Abs(*got.Mean-sum/float64(n)) > 0.01 {
		t.Fatalf("window %d..%d: stats %+v; telemetry: %d readings, max %.2f min %.2f mean %.4f", win.FromTS, win.ToTS, got, n, mx, mn, sum/float64(n))
	}
	if win.Outputs["breaker-3"].Cuts < 1 || win.Alarms["cutoff"] < 1 {
		t.Fatalf("window outputs %+v alarms %+v", win.Outputs, win.Alarms)
	}

	// A cut-off active over a restart is in the retained alarms afterwards.
	s.setCH4(0, 1.7)
	if within(10*time.Second, func() bool {
		var act contract.ActiveAlarms
		return cons.latest(t, contract.KindAlarms, &act) && len(act.Alarms) > 0
	}) < 0 {
		t.Fatal("no active alarm")
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.exited(20 * time.Second)
	s.msgs.mu.Lock()
	n0 := len(s.msgs.msgs)
	s.msgs.mu.Unlock()
	startProc(t, hazmonBin, nil, nil, "run", "--config", path)
	if within(wait, func() bool {
		s.msgs.mu.Lock()
		fresh := len(s.msgs.msgs) > n0
		s.msgs.mu.Unlock()
		var act contract.ActiveAlarms
		if !fresh || !cons.latest(t, contract.KindAlarms, &act) {
			return false
		}
		for _, a := range act.Alarms {
			if a.Sensor == "CH4-101" && a.Level == "cutoff" {
				return true
			}
		}
		return false
	}) < 0 {
		t.Fatal("after the restart the retained alarms do not list the active cut-off")
	}
}
