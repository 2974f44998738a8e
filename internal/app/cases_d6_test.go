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
)

// D6 end to end: float32 [7FC0, 0000] (NaN), [7FBF, FF80] (a non-canonical
// NaN), [7F80, 0000] (+Inf), int32 [8000, 0000] and uint16 FFFF listed as
// the sensor's no-value code, read from a real Modbus TCP slave, all reach
// the platform as status fault with value null in schema-valid JSON, and
// the rules (alarm above 100) raise a fault, never an alarm. A control
// sensor on the same slave reads 42 normally, so the test sees the agent work.
func TestCases_D6FaultsPublishedAsNull(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 0, 0x7FC0, 0x0000)
	bank.SetHolding(1, 2, 0x7FBF, 0xFF80)
	bank.SetHolding(1, 4, 0x7F80, 0x0000)
	bank.SetHolding(1, 6, 0x8000, 0x0000)
	bank.SetHolding(1, 8, 0xFFFF)
	bank.SetHolding(1, 9, 42)
	addr := mbslavetest.StartTCP(t, bank)
	broker := brokertest.Start(t)
	sub := broker.Subscribe(t, "platform-d6", "hazmon/v1/site-0001/gw-d6/#")
	rules := `rules: [{level: alarm, above: 100}]`
	cfg := loadConfig(t, fmt.Sprintf(`agent: {id: gw-d6, site: site-0001, data_dir: %s}
mqtt: {brokers: [%q], keepalive: 5s}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 500ms}
sensors:
  - {id: NAN, type: pressure, bus: plc, slave: 1, table: holding, address: 0, format: float32, unit: kPa, interval: 200ms, %[4]s}
  - {id: NAN-NC, type: pressure, bus: plc, slave: 1, table: holding, address: 2, format: float32, unit: kPa, interval: 200ms, %[4]s}
  - {id: INF, type: pressure, bus: plc, slave: 1, table: holding, address: 4, format: float32, unit: kPa, interval: 200ms, %[4]s}
  - {id: I32-NV, type: pressure, bus: plc, slave: 1, table: holding, address: 6, format: int32, no_value: [-2147483648], unit: kPa, interval: 200ms, %[4]s}
  - {id: U16-NV, type: pressure, bus: plc, slave: 1, table: holding, address: 8, format: uint16, no_value: [65535], unit: kPa, interval: 200ms, %[4]s}
  - {id: OK, type: pressure, bus: plc, slave: 1, table: holding, address: 9, format: uint16, unit: kPa, interval: 200ms, %[4]s}
`, t.TempDir(), broker.URL, addr, rules))
	runApp(t, cfg)

	wantErr := map[string]string{"NAN": "NaN", "NAN-NC": "NaN", "INF": "+Inf", "I32-NV": "no-value", "U16-NV": "no-value"}
	faults := map[string]int{}
	okSeen := 0
	deadline := time.After(60 * time.Second)
	for okSeen < 3 || len(faults) < len(wantErr) || min(faults["NAN"], faults["NAN-NC"], faults["INF"], faults["I32-NV"], faults["U16-NV"]) < 3 {
		select {
		case m := <-sub:
			kind := m.Topic[strings.LastIndex(m.Topic, "/")+1:]
			if err := contract.Validate(kind, m.Payload); err != nil {
				t.Fatalf("%s payload fails its schema: %v\n%s", kind, err, m.Payload)
			}
			switch kind {
			case "alarm":
				var a contract.Alarm
				mustJSON(t, m.Payload, &a)
				if a.Level != "fault" {
					t.Fatalf("a no-value/NaN reading raised %s: %s", a.Level, m.Payload)
				}
			case "telemetry":
				// The raw JSON must say "value":null for a fault.
				var tm struct {
					Readings []map[string]json.RawMessage `json:"readings"`
				}
				mustJSON(t, m.Payload, &tm)
				for _, raw := range tm.Readings {
					var r contract.Reading
					b, _ := json.Marshal(raw)
					mustJSON(t, b, &r)
					if strings.Contains(r.Error, "bus down") {
						continue
					}
					if r.Sensor == "OK" {
						if r.Status != "normal" || r.Value == nil || *r.Value != 42 {
							t.Fatalf("control sensor: %s", b)
						}
						okSeen++
						continue
					}
					if v, ok := raw["value"]; !ok || string(v) != "null" || r.Status != "fault" || !strings.Contains(r.Error, wantErr[r.Sensor]) {
						t.Fatalf("%s: %s; want status fault, \"value\":null, error with %q", r.Sensor, b, wantErr[r.Sensor])
					}
					faults[r.Sensor]++
				}
			}
		case <-deadline:
			t.Fatalf("after 60s: faults seen %v, control readings %d", faults, okSeen)
		}
	}
}
