package safety

import (
	"math"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// D6: no-value sentinels and NaN are a sensor fault to the rules, never a
// number crossing a limit. The decoder turns float32 [7FC0, 0000] (NaN),
// [7FBF, FF80] (a non-canonical NaN), [7F80, 0000] (+Inf), int32
// [8000, 0000] and uint16 FFFF (listed no-value codes) into fault readings;
// a fault reading may still carry a leftover number, and a reading that
// claims to be valid may carry a non-finite number (a bug upstream): in
// every case the engine must raise the fault (with its on_fault cut) and
// never an alarm or cut-off.
func TestCases_D6FaultNeverCrossesALimit(t *testing.T) {
	inputs := []struct {
		name string
		r    reading.Reading
	}{
		{"float32 NaN 7FC0 0000", reading.Reading{Status: reading.StatusFault, Err: "float32 is NaN", Value: math.NaN()}},
		{"float32 non-canonical NaN 7FBF FF80", reading.Reading{Status: reading.StatusFault, Err: "float32 is NaN", Value: float64(math.Float32frombits(0x7FBFFF80))}},
		{"float32 +Inf 7F80 0000", reading.Reading{Status: reading.StatusFault, Err: "float32 is +Inf", Value: math.Inf(1)}},
		{"int32 8000 0000 no-value", reading.Reading{Status: reading.StatusFault, Err: "raw -2147483648 is the sensor's no-value code", Value: -2147483648}},
		{"uint16 FFFF no-value", reading.Reading{Status: reading.StatusFault, Err: "raw 65535 is the sensor's no-value code", Value: 65535}},
		{"valid-looking NaN", reading.Reading{Status: reading.StatusNormal, Value: math.NaN()}},
		{"valid-looking non-canonical NaN", reading.Reading{Status: reading.StatusNormal, Value: float64(math.Float32frombits(0x7FBFFF80))}},
		{"valid-looking +Inf", reading.Reading{Status: reading.StatusNormal, Value: math.Inf(1)}},
		{"valid-looking -Inf", reading.Reading{Status: reading.StatusNormal, Value: math.Inf(-1)}},
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			// Methane at a coal face: alarm >= 1.0, cut-off >= 1.5 (PWR),
			// and an O2 low limit (below 19.5), so both directions are tried.
			e := mustEngine(t, coalFace("CH4", "PWR"),
				SensorRules{Sensor: "O2", Type: "o2", Resolution: 0.1, Rules: []Rule{{Level: LevelAlarm, Below: f(19.5), ClearAbove: f(19.5)}}})
			for _, sensor := range []string{"CH4", "O2"} {
				ok := reading.Reading{Sensor: sensor, Status: reading.StatusNormal, Value: 0.3}
				if sensor == "O2" {
					ok.Value = 20.9
				}
				e.Apply(ok, t0)
				r := in.r
				r.Sensor = sensor
				for i := 1; i <= 3; i++ { // repeated: an on-delay or a second sample must not help
					now := t0.Add(time.Duration(i) * time.Second)
					st, fx := e.Apply(r, now)
					if st != reading.StatusFault {
						t.Fatalf("%s sample %d: status %q, want fault", sensor, i, st)
					}
					for _, ev := range fx.Events {
						if ev.Level != LevelFault {
							t.Fatalf("%s sample %d: event %s %s: a fault crossed a limit", sensor, i, ev.Level, ev.State)
						}
						if ev.Valid || !math.IsNaN(ev.Value) && ev.Value != 0 {
							t.Errorf("%s: fault event carries a value %v (valid %v)", sensor, ev.Value, ev.Valid)
						}
					}
					if i == 1 && (len(fx.Events) != 1 || fx.Events[0].State != StateRaised) {
						t.Fatalf("%s: events %+v, want one fault raised", sensor, fx.Events)
					}
					e.Tick(now.Add(500 * time.Millisecond))
				}
				// The methane fault cuts PWR (on_fault default for a cut-off rule
				// is the lockout), but no alarm level is ever active.
				if st, _ := e.Status(sensor); st != reading.StatusFault {
					t.Fatalf("%s: status after the faults %q", sensor, st)
				}
			}
		})
	}
}
