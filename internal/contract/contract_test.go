package contract

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

func f(v float64) *float64 { return &v }

func TestFromReading_FaultEncodesNull(t *testing.T) {
	ts := time.UnixMilli(1700000000123)
	r := FromReading(reading.Reading{Sensor: "CH4-101", Type: "methane", Unit: "%CH4", Time: ts, Value: 0.52, Status: reading.StatusFault, Err: "timeout", Code: reading.CodeTimeout})
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sensor":"CH4-101","type":"methane","ts":1700000000123,"value":null,"unit":"%CH4","status":"fault","error":"timeout","code":"timeout"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if err := Validate("reading", b); err != nil {
		t.Fatal(err)
	}
}

func TestFromReading_NaNBecomesFault(t *testing.T) {
	r := FromReading(reading.Reading{Sensor: "CH4-101", Type: "methane", Time: time.UnixMilli(1), Value: math.NaN(), Status: reading.StatusNormal})
	if r.Value != nil || r.Status != "fault" || r.Error == "" || r.Code != "nan" {
		t.Fatalf("NaN reading = %+v, want a fault with null value", r)
	}
}

func TestMarshal_RejectsNonFinite(t *testing.T) {
	_, err := Marshal(Alarm{Value: f(math.Inf(1))})
	if !errors.Is(err, ErrNotFinite) {
		t.Fatalf("err = %v, want ErrNotFinite", err)
	}
}

func TestValidate(t *testing.T) {
	good := map[string]any{
		KindTelemetry: Telemetry{V: 1, Agent: "gw-01", Site: "site-0001", Seq: 7, Readings: nil},
		KindAlarm:     Alarm{V: 1, Seq: 3, AlarmID: "CH4-101/cutoff/1700000000000", Agent: "gw-01", Site: "site-0001", Sensor: "CH4-101", Level: "cutoff", State: "raised", TS: 1700000000000, Value: f(1.52), Limit: f(1.5), Outputs: []string{"breaker-3"}},
		KindEvent:     Event{V: 1, Seq: 1, Agent: "gw-01", Site: "site-0001", Type: EventDataLoss, TS: 5, FromTS: 1, ToTS: 4, Readings: 10, Reason: "buffer_full"},
		KindStatus:    Status{V: 1, State: StateOnline, TS: 5, BootID: testBootID, Version: "dev", Sensors: []string{"CH4-101"}},
		KindCurrent:   Current{V: 1, Agent: "gw-01", Site: "site-0001", TS: 5, Readings: []Reading{{Sensor: "CH4-101", Type: "methane", TS: 5, Value: f(0.5), Unit: "%CH4", Status: "normal"}}},
	}
	// telemetry needs at least one reading
	rb, _ := Marshal(Reading{Sensor: "CH4-101", Type: "methane", TS: 5, Value: f(0.52), Unit: "%CH4", Status: "normal"})
	tm := good[KindTelemetry].(Telemetry)
	tm.Readings = append(tm.Readings, rb)
	good[KindTelemetry] = tm
	for kind, v := range good {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(kind, b); err != nil {
			t.Errorf("%s %s: %v", kind, b, err)
		}
	}
	bad := map[string]string{
		"fault with value": `{"v":1,"agent":"a","site":"s","seq":1,"historical":false,"readings":[{"sensor":"X","type":"methane","ts":1,"value":0.5,"unit":"%","status":"fault","error":"timeout","code":"timeout"}]}`,
		"normal with null": `{"v":1,"agent":"a","site":"s","seq":1,"historical":false,"readings":[{"sensor":"X","type":"methane","ts":1,"value":null,"unit":"%","status":"normal"}]}`,
		"missing seq":      `{"v":1,"agent":"a","site":"s","historical":false,"readings":[{"sensor":"X","type":"methane","ts":1,"value":1,"unit":"%","status":"normal"}]}`,
		"wrong version":    `{"v":2,"agent":"a","site":"s","seq":1,"historical":false,"readings":[{"sensor":"X","type":"methane","ts":1,"value":1,"unit":"%","status":"normal"}]}`,
		"empty readings":   `{"v":1,"agent":"a","site":"s","seq":1,"historical":false,"readings":[]}`,
	}
	for name, p := range bad {
		if err := Validate(KindTelemetry, []byte(p)); err == nil {
			t.Errorf("%s: accepted %s", name, p)
		}
	}
	if err := Validate(KindEvent, []byte(`{"v":1,"seq":1,"agent":"a","site":"s","type":"data_loss","ts":1}`)); err == nil {
		t.Error("data_loss without counts accepted")
	}
	if err := Validate("nope", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown kind: %v", err)
	}
}
