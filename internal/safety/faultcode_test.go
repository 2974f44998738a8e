package safety

import (
	"math"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// Every fault the engine raises carries a code: the reading's own, stale
// for a sensor silent beyond stale_after, nan or inf for a value that is
// not a number, unknown for a fault reading that came without one.
func TestEngine_FaultEventsCarryACode(t *testing.T) {
	sensor := func() SensorRules {
		return SensorRules{Sensor: "CH4", Type: "methane", Resolution: 0.01, StaleAfter: 3 * time.Second,
			FaultUnlockAfter: time.Second, Rules: coalFace("", "PWR").Rules}
	}
	for _, c := range []struct {
		name string
		r    *reading.Reading // nil: no reading, Tick past stale_after
		want reading.FaultCode
	}{
		{"reading's code", &reading.Reading{Status: reading.StatusFault, Err: "bus b: timeout", Code: reading.CodeTimeout}, reading.CodeTimeout},
		{"bus stalled", &reading.Reading{Status: reading.StatusFault, Err: "bus b stalled", Code: reading.CodeStalled}, reading.CodeStalled},
		{"fault without code", &reading.Reading{Status: reading.StatusFault, Err: "?"}, reading.CodeUnknown},
		{"NaN claimed valid", &reading.Reading{Status: reading.StatusNormal, Value: math.NaN()}, reading.CodeNaN},
		{"Inf claimed valid", &reading.Reading{Status: reading.StatusNormal, Value: math.Inf(1)}, reading.CodeInf},
		{"stale", nil, reading.CodeStale},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := mustEngine(t, sensor())
			e.Apply(reading.Reading{Sensor: "CH4", Time: t0, Value: 0.2, Status: reading.StatusNormal}, t0)
			at := t0.Add(time.Second)
			var fx Effects
			if c.r == nil {
				at = t0.Add(3001 * time.Millisecond)
				fx = e.Tick(at)
			} else {
				r := *c.r
				r.Sensor, r.Time = "CH4", at
				_, fx = e.Apply(r, at)
			}
			if len(fx.Events) != 1 || fx.Events[0].Level != LevelFault || fx.Events[0].State != StateRaised {
				t.Fatalf("events %+v, want one fault raised", fx.Events)
			}
			if ev := fx.Events[0]; ev.Code != c.want || ev.Reason == "" {
				t.Fatalf("fault event code %q reason %q, want code %q and a reason", ev.Code, ev.Reason, c.want)
			}
		})
	}
}
