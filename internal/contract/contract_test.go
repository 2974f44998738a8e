package contract

import (
	"encoding/json"
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

// The buffer's additions (issue 10): rec, epoch and id on the streams,
// the data_loss event's stream and rec, buffer_reset's counts and
// buffer_fault validate; a malformed rec or a data_loss rec without its
// stream does not. Payloads without them (older agents) still validate.
func TestValidate_RecEpochAndBufferEvents(t *testing.T) {
	rb, _ := Marshal(Reading{Sensor: "CH4-101", Type: "methane", TS: 5, Value: f(0.52), Unit: "%CH4", Status: "normal"})
	n, lost := int64(2973), int64(27)
	good := []struct {
		kind string
		v    any
	}{
		{KindTelemetry, Telemetry{V: 1, Agent: "gw", Site: "s", Seq: 8, Epoch: 2, Rec: []uint64{41, 41}, Readings: []json.RawMessage{rb}}},
		{KindAlarm, Alarm{V: 1, Seq: 3, Epoch: 1, Rec: []uint64{9, 9}, AlarmID: "CH4-101/cutoff/high/1", Agent: "gw", Site: "s", Sensor: "CH4-101", Level: "cutoff", State: "raised", TS: 1, Outputs: []string{}}},
		{KindEvent, Event{V: 1, Seq: 4, Epoch: 1, ID: 4, Agent: "gw", Site: "s", Type: EventDataLoss, TS: 5, FromTS: 1, ToTS: 4, Readings: 120, Reason: "buffer_full", Stream: "telemetry", Rec: []uint64{7881, 8000}}},
		{KindEvent, Event{V: 1, Seq: 5, Epoch: 2, ID: 5, Agent: "gw", Site: "s", Type: EventBufferReset, TS: 5, Reason: "corrupt", Salvaged: &n, Lost: &lost}},
		{KindEvent, Event{V: 1, Seq: 6, Epoch: 2, ID: 6, Agent: "gw", Site: "s", Type: EventBufferFault, TS: 5, Reason: "disk_full", Detail: "no space left on device"}},
	}
	for _, g := range good {
		b, err := Marshal(g.v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(g.kind, b); err != nil {
			t.Errorf("%s %s: %v", g.kind, b, err)
		}
	}
	bad := map[string]string{
		"rec of three":             `{"v":1,"agent":"a","site":"s","seq":1,"rec":[1,2,3],"historical":false,"readings":[{"sensor":"X","type":"methane","ts":1,"value":1,"unit":"%","status":"normal"}]}`,
		"epoch 0":                  `{"v":1,"agent":"a","site":"s","seq":1,"epoch":0,"historical":false,"readings":[{"sensor":"X","type":"methane","ts":1,"value":1,"unit":"%","status":"normal"}]}`,
		"data_loss rec, no stream": `{"v":1,"seq":1,"agent":"a","site":"s","type":"data_loss","ts":1,"from_ts":1,"to_ts":1,"readings":1,"reason":"unreadable","rec":[2,2]}`,
		"unknown stream":           `{"v":1,"seq":1,"agent":"a","site":"s","type":"data_loss","ts":1,"from_ts":1,"to_ts":1,"readings":1,"reason":"unreadable","stream":"x","rec":[2,2]}`,
		"reset without reason":     `{"v":1,"seq":1,"agent":"a","site":"s","type":"buffer_reset","ts":1,"salvaged":3}`,
	}
	for name, p := range bad {
		kind := KindEvent
		if strings.Contains(p, `"readings":[`) {
			kind = KindTelemetry
		}
		if err := Validate(kind, []byte(p)); err == nil {
			t.Errorf("%s: accepted %s", name, p)
		}
	}
}
