package publish

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// Through a real broker: the snapshot is published on connect, then a
// change of status reaches the subscriber without waiting for the
// interval (10 minutes here), at least a second after the one before.
func TestCurrent_StatusChangeReachesTheBroker(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-current", "hazmon/v1/site-0001/gw-01/current")
	next := func(what string) contract.Current {
		t.Helper()
		select {
		case m := <-sub:
			if err := contract.Validate(contract.KindCurrent, m.Payload); err != nil {
				t.Fatalf("%s: %v\n%s", what, err, m.Payload)
			}
			var c contract.Current
			if err := json.Unmarshal(m.Payload, &c); err != nil {
				t.Fatal(err)
			}
			return c
		case <-time.After(wait):
			t.Fatalf("no current within %v (%s)", wait, what)
			return contract.Current{}
		}
	}
	v := 0.5
	s := openStore(t)
	p, _ := startPublisher(t, s, Options{Brokers: []string{b.URL}, CurrentInterval: 10 * time.Minute,
		Resolutions: map[string]float64{"CH4-101": 0.01}})
	p.UpdateCurrent(contract.Reading{Sensor: "CH4-101", Type: "methane", TS: 1, Value: &v, Unit: "%CH4", Status: "normal"})
	first := next("first reading")
	if len(first.Readings) != 1 || first.Readings[0].Status != "normal" {
		t.Fatalf("first current %+v", first)
	}
	p.UpdateCurrent(contract.Reading{Sensor: "CH4-101", Type: "methane", TS: 2, Value: &v, Unit: "%CH4", Status: "alarm"})
	second := next("status change")
	if len(second.Readings) != 1 || second.Readings[0].Status != "alarm" {
		t.Fatalf("after the status change: %+v, want alarm", second)
	}
	if gap := second.TS - first.TS; gap < MinCurrentGap.Milliseconds() {
		t.Errorf("two currents %d ms apart, want at least %v", gap, MinCurrentGap)
	}
}
