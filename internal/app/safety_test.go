package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

// waitFor polls cond every 5 ms until it holds or d passes; it returns the
// time it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestApp_CutoffWithBrokerDown: with the broker down, methane reaching the
// coal-face cut-off (1.5 %CH4, Art. 498) de-energises a real breaker coil on
// a Modbus slave within 2 s of the poll, the alarms are in the buffer, and
// when the broker returns the alarms arrive before the telemetry backlog.
// Restore needs methane strictly below 1.0 and the fan running (interlock).
func TestApp_CutoffWithBrokerDown(t *testing.T) {
	bank := mbslave.NewBank()
	bank.SetHolding(1, 0, 50) // 0.50 %CH4
	bank.SetDiscrete(1, 0, true)
	bank.SetCoil(1, 100, true) // someone left the breaker energised: the agent must start cut
	addr := mbslavetest.StartTCP(t, bank)

	broker := brokertest.Start(t)
	sub := broker.Subscribe(t, "platform", "hazmon/v1/site-0001/gw-1/#")
	broker.Stop()

	cfg := loadConfig(t, fmt.Sprintf(`agent: {id: gw-1, site: site-0001, data_dir: %s}
mqtt: {brokers: [%q], keepalive: 2s, connect_timeout: 1s}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 300ms}
outputs:
  - {name: breaker-3, modbus: {bus: plc, slave: 1, coil: 100}}
sensors:
  - {id: CH4-101, type: methane, bus: plc, slave: 1, table: holding, address: 0, scale: 0.01, unit: "%%CH4",
     interval: 100ms, range: [0, 4], location: coal_face, cut_outputs: [breaker-3]}
  - {id: FAN-1-RUNNING, type: digital, bus: plc, slave: 1, table: discrete, address: 0, interval: 100ms,
     rules: [{level: cutoff, equals: false, outputs: [breaker-3]}]}
`, t.TempDir(), broker.URL, addr))
	a, stop := runApp(t, cfg)

	waitFor(t, 10*time.Second, "breaker energised once methane and fan read valid", func() bool { return bank.Coil(1, 100) })

	bank.SetHolding(1, 0, 150) // exactly the 1.50 cut-off limit
	took := waitFor(t, 5*time.Second, "breaker cut at 1.50 %CH4", func() bool { return !bank.Coil(1, 100) })
	// One poll interval (100 ms) plus the bus round trips: well within the 2 s of GB 50581-2010 §3.1.4.
	if took > 2*time.Second {
		t.Fatalf("cut-off took %s, want ≤ 2s", took)
	}

	// Restore value is 1.0: exactly 1.00 does not restore, 0.99 does — unless the fan stops.
	bank.SetHolding(1, 0, 100)
	time.Sleep(600 * time.Millisecond)
	if bank.Coil(1, 100) {
		t.Fatal("restored at exactly the restore value 1.00")
	}
	bank.SetDiscrete(1, 0, false) // local fan stops: ventilation-power interlock
	bank.SetHolding(1, 0, 99)
	time.Sleep(600 * time.Millisecond)
	if bank.Coil(1, 100) {
		t.Fatal("restored while the fan is stopped")
	}
	bank.SetDiscrete(1, 0, true)
	waitFor(t, 5*time.Second, "restore after every demand cleared", func() bool { return bank.Coil(1, 100) })

	st, err := a.buffer().Stats()
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := st.Depth(); p == 0 {
		t.Fatal("nothing buffered while the broker is down")
	}
	if n := st.Streams[store.Alarm].Pending; n < 4 {
		t.Fatalf("alarm stream holds %d records, want ≥ 4 (alarm, cutoff, fan cutoff raised and cleared)", n)
	}

	broker.Start()
	var order []string
	levels := map[string]int{}
	deadline := time.After(30 * time.Second)
	for len(order) < 40 {
		select {
		case m := <-sub:
			kind := m.Topic[strings.LastIndex(m.Topic, "/")+1:]
			if err := contract.Validate(kind, m.Payload); err != nil {
				t.Fatalf("%s: %v\n%s", kind, err, m.Payload)
			}
			if kind == "alarm" {
				var al contract.Alarm
				if err := json.Unmarshal(m.Payload, &al); err != nil {
					t.Fatal(err)
				}
				levels[al.Sensor+"/"+al.Level+"/"+al.State]++
			}
			if kind == "alarm" || kind == "telemetry" {
				order = append(order, kind)
			}
		case <-deadline:
			t.Fatalf("after 30s: %v", order)
		}
	}
	firstTelemetry := strings.Index(strings.Join(order, ","), "telemetry")
	lastAlarm := strings.LastIndex(strings.Join(order[:20], ","), "alarm")
	if firstTelemetry < lastAlarm {
		t.Errorf("telemetry before alarms: %v", order)
	}
	for _, k := range []string{"CH4-101/alarm/raised", "CH4-101/cutoff/raised", "CH4-101/cutoff/cleared", "FAN-1-RUNNING/cutoff/raised", "FAN-1-RUNNING/cutoff/cleared"} {
		if levels[k] != 1 {
			t.Errorf("alarm %s seen %d times, want 1 (all: %v)", k, levels[k], levels)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if bank.Coil(1, 100) {
		t.Fatal("breaker not cut on shutdown")
	}
}
