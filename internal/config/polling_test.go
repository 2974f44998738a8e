package config

import (
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

// pollingYAML: a coal face on an RS-485 line (timeout 500 ms) and a PLC
// (TCP, timeout 1 s) carrying the breaker coil.
const pollingYAML = `agent: {id: gw-01, site: site-0001}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
buses:
  - {name: face-485, protocol: rtu, device: /dev/ttyUSB0, timeout: 500ms}
  - {name: plc, protocol: tcp, address: "127.0.0.1:502", timeout: 1s}
  - {name: comfort, protocol: tcp, address: "127.0.0.1:503", timeout: 5s}
outputs:
  - {name: BRK, modbus: {bus: plc, slave: 1, coil: 0}, feed: FEED}
sensors:
  - {id: CH4, type: methane, bus: face-485, slave: 1, table: holding, address: 0, scale: 0.01, unit: "%CH4", range: [0, 4],
     location: coal_face, cut_outputs: [BRK]}
  - {id: FAN, type: digital, bus: face-485, slave: 2, table: discrete, address: 0, interval: 500ms,
     rules: [{level: cutoff, equals: false, outputs: [BRK]}]}
  - {id: FEED, type: digital, bus: plc, slave: 1, table: discrete, address: 1, interval: 500ms}
  - {id: TEMP, type: temperature, bus: comfort, slave: 1, table: holding, address: 0, unit: C, range: [-40, 100]}
  - {id: DOOR, type: digital, gpio: {chip: gpiochip0, line: 5}}
`

func parsePolling(t *testing.T, old, new string) (*Loaded, error) {
	t.Helper()
	y := strings.Replace(pollingYAML, old, new, 1)
	if old != "" && y == pollingYAML {
		t.Fatalf("edit %q did not apply", old)
	}
	return Parse("p.yaml", []byte(y))
}

// OnTime is by role: what a cut depends on (a methane sensor, a cut-off
// contact, a feed contact), not a comfort reading or a gpio door contact
// that only reports.
func TestOnTime_ByRole(t *testing.T) {
	l, err := parsePolling(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"CH4": true, "FAN": true, "FEED": true, "TEMP": false, "DOOR": false, "NONE": false} {
		if got := l.Config.OnTime(id); got != want {
			t.Errorf("OnTime(%s) = %v, want %v", id, got, want)
		}
	}
}

// stale_after defaults, as the rule engine gets them: 3 poll periods, never
// less than the longest normal gap (fault_after periods + timeout); a
// comfort sensor, which an over-subscribed bus may poll every 30 s, 3 ×
// 30 s; a methane sensor with a cut-off at most interval + 2 s.
func TestStaleAfter_Defaults(t *testing.T) {
	for _, c := range []struct {
		name, old, new string
		sensor         string
		want           time.Duration
	}{
		{"methane cut-off 1s, rtu 500ms: min(3 × 1s, 1s + 2s)", "", "", "CH4", 3 * time.Second},
		{"methane cut-off 500ms: 1.5s covers 2 × 500ms + 500ms", "address: 0, scale: 0.01", "address: 0, interval: 500ms, scale: 0.01", "CH4", 1500 * time.Millisecond},
		{"methane cut-off 200ms: the gap 2 × 200ms + 500ms, not 3 × 200ms", "address: 0, scale: 0.01", "address: 0, interval: 200ms, scale: 0.01", "CH4", 900 * time.Millisecond},
		{"fan contact 500ms: 3 × 500ms", "", "", "FAN", 1500 * time.Millisecond},
		{"feed contact 500ms on a 1s bus: the gap 2 × 500ms + 1s", "", "", "FEED", 2 * time.Second},
		{"comfort sensor, may stretch to 30s: 3 × 30s", "", "", "TEMP", 90 * time.Second},
		{"comfort sensor at 1m: 3 × 1m", "address: 0, unit: C", "address: 0, interval: 1m, unit: C", "TEMP", 3 * time.Minute},
		{"gpio input 1s: 3 × 1s", "", "", "DOOR", 3 * time.Second},
		{"configured", "address: 0, unit: C", "address: 0, stale_after: 100s, unit: C", "TEMP", 100 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := parsePolling(t, c.old, c.new)
			if err != nil {
				t.Fatal(err)
			}
			for _, sr := range l.Config.SensorRules() {
				if sr.Sensor == c.sensor && sr.StaleAfter != c.want {
					t.Errorf("%s: stale_after %v, want %v", c.sensor, sr.StaleAfter, c.want)
				}
			}
			for _, s := range l.Config.Effective().Sensors {
				if s.ID == c.sensor && s.StaleAfter.D() != c.want {
					t.Errorf("config show: stale_after %v, want %v", s.StaleAfter, c.want)
				}
			}
		})
	}
}

// The rule engine built from the config faults a methane sensor whose
// readings stop, stale_after (3 s) after the last one: its cut-off's fault
// lockout cuts the breaker.
func TestSensorRules_StaleMethaneCutsItsOutputs(t *testing.T) {
	l, err := parsePolling(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	e, err := safety.NewEngine(l.Config.SensorRules())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for _, id := range []string{"CH4", "FAN", "FEED", "TEMP", "DOOR"} {
		v := 0.5
		if id == "FAN" {
			v = 1
		}
		e.Apply(reading.Reading{Sensor: id, Time: t0, Value: v, Status: reading.StatusNormal}, t0)
	}
	if cut, _ := e.Cut("BRK"); cut {
		t.Fatal("breaker cut with every sensor valid")
	}
	e.Apply(reading.Reading{Sensor: "FAN", Time: t0, Value: 1, Status: reading.StatusNormal}, t0.Add(2900*time.Millisecond))
	e.Tick(t0.Add(3 * time.Second))
	if cut, _ := e.Cut("BRK"); cut {
		t.Fatal("cut at exactly stale_after (a reading one missed poll late is normal)")
	}
	fx := e.Tick(t0.Add(3*time.Second + time.Millisecond))
	if cut, _ := e.Cut("BRK"); !cut {
		t.Fatalf("breaker not cut after 3 s without a methane reading; effects %+v", fx)
	}
	if st, _ := e.Status("CH4"); st != reading.StatusFault {
		t.Errorf("CH4 status %s, want fault", st)
	}
}

func TestValidate_FaultAfterAndStaleAfter(t *testing.T) {
	for _, c := range []struct {
		name, old, new string
		want           string // "" = valid
	}{
		{"fault_after 0", "address: 0, scale: 0.01", "address: 0, fault_after: 0, scale: 0.01",
			"p.yaml:10: sensors[0].fault_after: 0: must be at least 1"},
		{"fault_after 1 on methane", "address: 0, scale: 0.01", "address: 0, fault_after: 1, scale: 0.01", ""},
		{"fault_after 3 on methane", "address: 0, scale: 0.01", "address: 0, fault_after: 3, scale: 0.01",
			"p.yaml:10: sensors[0].fault_after: 3: this sensor's rules cut outputs, and a dead slave must cut them within 2 × interval + timeout = 2.5s (GB 50581-2010 §3.1.4), but 3 failed polls take up to 3.5s; use at most 2"},
		{"fault_after 3 on a fan interlock", "interval: 500ms,\n     rules", "interval: 500ms, fault_after: 3,\n     rules",
			"sensors[1].fault_after: 3: this sensor's rules cut outputs"},
		{"fault_after 5 on a comfort sensor", "address: 0, unit: C", "address: 0, fault_after: 5, unit: C", ""},
		{"fault_after on a gpio input warns", "{id: DOOR, type: digital,", "{id: DOOR, type: digital, fault_after: 2,", ""},
		{"stale_after negative", "address: 0, unit: C", "address: 0, stale_after: -1s, unit: C", "sensors[3].stale_after: must not be negative"},
		{"stale_after inside a missed poll's gap", "interval: 500ms,\n     rules", "interval: 500ms, stale_after: 1s,\n     rules",
			"p.yaml:12: sensors[1].stale_after: 1s is shorter than the longest normal gap between this sensor's readings, 1.5s (fault_after 2 × interval 500ms + timeout 500ms): one missed poll would fault it; use at least 1.5s"},
		{"stale_after of a comfort sensor inside a stretched gap", "address: 0, unit: C", "address: 0, stale_after: 30s, unit: C",
			"sensors[3].stale_after: 30s is shorter than the longest normal gap between this sensor's readings, 1m5s (fault_after 2 × 30s, the slowest an over-subscribed bus polls a sensor that is not on time, + timeout 5s)"},
		{"methane stale_after beyond interval + 2s", "address: 0, scale: 0.01", "address: 0, stale_after: 4s, scale: 0.01",
			"sensors[0].stale_after: 4s: a methane sensor with a cut-off must be faulted within interval + 2s = 3s of its last reading (GB 50581-2010 §3.1.4); use at most 3s"},
		{"methane cut-off at 2s: a missed poll's gap beyond interval + 2s", "address: 0, scale: 0.01", "address: 0, interval: 2s, scale: 0.01",
			"sensors[0].interval: 2s: a methane sensor with a cut-off must be faulted within interval + 2s = 4s of its last reading (GB 50581-2010 §3.1.4), but its readings may normally be 4.5s apart (fault_after 2 × interval 2s + timeout 500ms): shorten the interval or the bus timeout, or set fault_after: 1"},
		{"methane cut-off at 2s with fault_after 1", "address: 0, scale: 0.01", "address: 0, interval: 2s, fault_after: 1, scale: 0.01", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := parsePolling(t, c.old, c.new)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
			if strings.Contains(c.name, "warns") && (len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0].Error(), "sensors[4].fault_after: applies to bus sensors only")) {
				t.Errorf("warnings %v", l.Warnings)
			}
		})
	}
}

// A cut on a bus waits for the transaction in flight plus its own: a bus
// carrying output coils or on-time sensors takes a timeout of at most 1 s
// (GB 50581-2010 §3.1.4: within 2 s); a comfort bus keeps up to 30 s.
func TestValidate_BusTimeoutBoundForCuts(t *testing.T) {
	for _, c := range []struct {
		name, old, new string
		want           string
	}{
		{"coil bus at 1s", "", "", ""},
		{"coil bus at 1.5s", `address: "127.0.0.1:502", timeout: 1s}`, `address: "127.0.0.1:502", timeout: 1.5s}`,
			"p.yaml:5: buses[1].timeout: 1.5s: a cut-off on this bus could wait 3s (read in flight 1.5s + coil write 1.5s) > 2s (GB 50581-2010 §3.1.4); use at most 1s"},
		{"cut-off sensors only, at 1.2s", "device: /dev/ttyUSB0, timeout: 500ms}", "device: /dev/ttyUSB0, timeout: 1.2s}",
			"p.yaml:4: buses[0].timeout: 1.2s: a cut-off on this bus could wait 2.4s (read in flight 1.2s + the cut-off sensor's own read 1.2s) > 2s"},
		{"comfort bus at 30s", `address: "127.0.0.1:503", timeout: 5s}`, `address: "127.0.0.1:503", timeout: 30s}`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parsePolling(t, c.old, c.new)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
		})
	}
}
