package contract_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/contract/v2consumer"
	"github.com/hazmon/hazmon/internal/reading"
)

// encodeBoth forms the v1 and v2 messages of records as the publisher does.
func encodeBoth(t testing.TB, sensors []contract.PointSensor, h contract.TelemetryHead, records [][]byte) (v1, v2 []byte) {
	t.Helper()
	tm := contract.Telemetry{V: 1, Agent: "gw-01", Site: "site-0001", Seq: h.Seq, Epoch: h.Epoch, Historical: h.Historical}
	if h.First > 0 {
		tm.Rec = []uint64{h.First, h.Last}
	}
	e := contract.NewTelemetryV2Encoder("gw-01", "site-0001")
	var x *contract.TelemetryV2Index // nil sensors: no registry
	if sensors != nil {
		x = contract.NewTelemetryV2Index(sensors)
	}
	e.Begin(h, x)
	for _, r := range records {
		tm.Readings = append(tm.Readings, r)
		if err := e.Add(r); err != nil {
			t.Fatalf("add %s: %v", r, err)
		}
	}
	v1, err := contract.Marshal(tm)
	if err != nil {
		t.Fatal(err)
	}
	return v1, e.Finish(nil)
}

func record(t testing.TB, r reading.Reading) []byte {
	t.Helper()
	b, err := contract.Marshal(contract.FromReading(r))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func registry(t testing.TB, sensors []contract.PointSensor) []byte {
	t.Helper()
	b, err := contract.Marshal(contract.Points{V: 1, Agent: "gw-01", Site: "site-0001", TS: 1, Hash: "0123456789abcdef",
		Reg: contract.RegHash(sensors), Sensors: sensors, Outputs: []contract.PointOutput{}, Groups: []contract.PointGroup{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := contract.Validate(contract.KindPoints, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func point(id string, index, decimals int) contract.PointSensor {
	return contract.PointSensor{ID: id, Index: index, Type: "methane", PointCode: id, Kind: "MN", Unit: "%CH4", Decimals: decimals,
		Resolution: math.Pow10(-decimals), Limits: []contract.PointLimit{}, Cuts: []string{}, FeedOf: []string{}, IntervalS: 1, FaultAfter: 2}
}

// The README's worked example, byte for byte: two polls of three
// sensors, a fault, a float value that is not whole in its decimals, an
// alarm.
func TestTelemetryV2_WorkedExample(t *testing.T) {
	sensors := []contract.PointSensor{point("CH4-101", 0, 2), point("CH4-102", 1, 2), point("T-201", 2, 1)}
	t0 := time.UnixMilli(1700000000000)
	recs := [][]byte{
		record(t, reading.Reading{Sensor: "CH4-101", Type: "methane", Unit: "%CH4", Time: t0, Value: 0.52, Status: reading.StatusNormal}),
		record(t, reading.Reading{Sensor: "CH4-102", Type: "methane", Unit: "%CH4", Time: t0, Value: 0.48, Status: reading.StatusNormal}),
		record(t, reading.Reading{Sensor: "T-201", Type: "temperature", Unit: "°C", Time: t0, Status: reading.StatusFault, Err: "no reply", Code: reading.CodeTimeout}),
		record(t, reading.Reading{Sensor: "CH4-101", Type: "methane", Unit: "%CH4", Time: t0.Add(time.Second), Value: 0.53, Status: reading.StatusNormal}),
		record(t, reading.Reading{Sensor: "CH4-102", Type: "methane", Unit: "%CH4", Time: t0.Add(time.Second), Value: 1.0871, Status: reading.StatusAlarm}),
	}
	v1, v2 := encodeBoth(t, sensors, contract.TelemetryHead{Seq: 7, Epoch: 1, First: 101, Last: 105}, recs)
	want := `{"v":2,"agent":"gw-01","site":"site-0001","seq":7,"epoch":1,"rec":[101,105],"historical":false,"reg":"` + contract.RegHash(sensors) +
		`","t0":1700000000000,"d":[[0,0,52,48,null],[1000,0,53,"1.0871"]],"s":[[2,"fault","timeout"],[4,"alarm"]]}`
	if string(v2) != want {
		t.Fatalf("v2\n got %s\nwant %s", v2, want)
	}
	t.Logf("reg %s; v1 %d bytes, v2 %d bytes\n%s", contract.RegHash(sensors), len(v1), len(v2), v1)
	sameReadings(t, sensors, v1, v2)
}

// sameReadings validates both payloads against their schemas and checks
// that the v2 consumer reconstructs exactly the v1 readings.
func sameReadings(t *testing.T, sensors []contract.PointSensor, v1, v2 []byte) {
	t.Helper()
	if err := contract.Validate(contract.KindTelemetry, v1); err != nil {
		t.Fatal(err)
	}
	if err := contract.Validate(contract.KindTelemetryV2, v2); err != nil {
		t.Fatalf("%v\n%s", err, v2)
	}
	var c v2consumer.Consumer
	if _, err := c.Decode(v2); err == nil && len(sensors) > 0 {
		t.Fatal("decoded before its registry was seen")
	}
	if sensors != nil {
		if err := c.Registry(registry(t, sensors)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Decode(v2)
	if err != nil {
		t.Fatal(err)
	}
	want, err := v2consumer.DecodeV1(v1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		for i := range want {
			if i >= len(got) || !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("reading %d: v2 %+v, v1 %+v (%d vs %d readings)", i, at(got, i), want[i], len(got), len(want))
			}
		}
		t.Fatalf("v2 has %d readings, v1 %d", len(got), len(want))
	}
}

func at(rs []v2consumer.Reading, i int) any {
	if i < len(rs) {
		r := rs[i]
		if r.Value != nil {
			return fmt.Sprintf("%+v value %v", r, *r.Value)
		}
		return r
	}
	return nil
}

// Every kind of reading survives the round trip exactly: negative and
// large values, values with more decimals than the sensor's (written as
// text), exponents, a sensor missing from the registry, faults without a
// code, every status, a clock step backwards, out-of-order sensors.
func TestTelemetryV2_ReconstructsV1Exactly(t *testing.T) {
	var sensors []contract.PointSensor
	for i := range 20 {
		sensors = append(sensors, point(fmt.Sprintf("S-%02d", i), i, i%4))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []reading.Status{reading.StatusNormal, reading.StatusNormal, reading.StatusNormal, reading.StatusFault, reading.StatusAlarm,
		reading.StatusAlarm2, reading.StatusCutoff, reading.StatusCalibrating, reading.StatusRed}
	values := []float64{0, -0.5, 12.25, 1e-7, 3.4e21, -273.15, 0.1 + 0.2, 123456789.125, 1.5e-3, 99999999999999.9, 7}
	ts := time.UnixMilli(1700000000000)
	var recs [][]byte
	for i := range 400 {
		id := fmt.Sprintf("S-%02d", rng.IntN(22)) // S-20 and S-21 are not in the registry
		if rng.IntN(3) > 0 {
			id = fmt.Sprintf("S-%02d", i%20) // mostly in order
		}
		if i%20 == 0 {
			ts = ts.Add(time.Duration(rng.IntN(2000)-200) * time.Millisecond)
		}
		r := reading.Reading{Sensor: id, Type: "methane", Unit: "%CH4", Time: ts, Status: statuses[rng.IntN(len(statuses))]}
		r.Value = values[rng.IntN(len(values))]
		if rng.IntN(2) == 0 {
			r.Value = math.Round(rng.Float64()*1e4) / 100
		}
		if r.Status == reading.StatusFault {
			r.Code = []reading.FaultCode{reading.CodeTimeout, reading.CodeRange, ""}[rng.IntN(3)]
		}
		recs = append(recs, record(t, r))
	}
	for _, h := range []contract.TelemetryHead{{Seq: 9, Epoch: 2, First: 1000, Last: 1399, Historical: true}, {Seq: 1}} {
		v1, v2 := encodeBoth(t, sensors, h, recs)
		sameReadings(t, sensors, v1, v2)
	}
	// No registry at all: every sensor by id, every value as text.
	v1, v2 := encodeBoth(t, nil, contract.TelemetryHead{Seq: 3, First: 1, Last: 400}, recs)
	sameReadings(t, nil, v1, v2)
}

// TestTelemetryV2_BytesPerReadingAt500Sensors measures the wire cost of v2
// against v1: 500 sensors of mixed types with realistic values at 1 Hz for
// one minute, in messages of the default 200 readings, in three layouts:
// four requests of 125 sensors (Modbus TCP, a PLC's register block), one
// request per sensor on one bus (RS-485 with a device per sensor: every
// reading its own time), and one request per sensor on four buses polled
// at once (the records of the buses interleave). The target is at most 10
// bytes per reading; the last layout is the worst case and is reported.
func TestTelemetryV2_BytesPerReadingAt500Sensors(t *testing.T) {
	type kind struct {
		typ, unit  string
		dec        int
		base, span float64
	}
	kinds := []kind{{"methane", "%CH4", 2, 0.05, 0.6}, {"co", "ppm", 0, 2, 30}, {"o2", "%", 1, 20.9, 0.4},
		{"temperature", "°C", 1, 22, 8}, {"wind", "m/s", 2, 1.5, 2}, {"pressure", "kPa", 2, 101.3, 0.5},
		{"water_level", "m", 2, 3, 1.5}, {"digital", "", 0, 0, 1}}
	var sensors []contract.PointSensor
	for i := range 500 {
		k := kinds[i%len(kinds)]
		p := point(fmt.Sprintf("%s-%03d", k.typ, i), i, k.dec)
		p.Type, p.Unit = k.typ, k.unit
		sensors = append(sensors, p)
	}
	start := time.UnixMilli(1700000000000)
	// order lists, for one second s, the sensors in record order with
	// their sample times.
	type sample struct {
		i  int
		at time.Time
	}
	layouts := []struct {
		name  string
		max   float64 // bytes per reading
		order func(rng *rand.Rand, s int) []sample
	}{
		{"4 requests of 125", 10, func(rng *rand.Rand, s int) (out []sample) {
			for req := range 4 {
				at := start.Add(time.Duration(s)*time.Second + time.Duration(req*7+rng.IntN(3))*time.Millisecond)
				for i := req * 125; i < (req+1)*125; i++ {
					out = append(out, sample{i, at})
				}
			}
			return out
		}},
		{"1 request per sensor, 1 bus", 10, func(rng *rand.Rand, s int) (out []sample) {
			at := start.Add(time.Duration(s) * time.Second)
			for i := range 500 {
				at = at.Add(time.Duration(1+rng.IntN(2)) * time.Millisecond)
				out = append(out, sample{i, at})
			}
			return out
		}},
		{"1 request per sensor, 4 buses at once", 14, func(rng *rand.Rand, s int) (out []sample) {
			for j := range 125 {
				for bus := range 4 {
					at := start.Add(time.Duration(s)*time.Second + time.Duration(j*7+bus+rng.IntN(2))*time.Millisecond)
					out = append(out, sample{bus*125 + j, at})
				}
			}
			return out
		}},
	}
	for _, l := range layouts {
		rng := rand.New(rand.NewPCG(3, 4))
		state := make([]float64, 500)
		for i := range state {
			k := kinds[i%len(kinds)]
			state[i] = k.base + rng.Float64()*k.span
		}
		var recs [][]byte
		for s := range 60 {
			for _, sm := range l.order(rng, s) {
				i, k := sm.i, kinds[sm.i%len(kinds)]
				p := math.Pow10(k.dec)
				state[i] += (rng.Float64() - 0.5) * k.span / 20
				state[i] = math.Min(math.Max(state[i], k.base), k.base+k.span)
				v := math.Round(state[i]*p) / p
				if k.typ == "digital" {
					v = float64(rng.IntN(100) / 99)
				}
				r := reading.Reading{Sensor: sensors[i].ID, Type: k.typ, Unit: k.unit, Time: sm.at, Value: v, Status: reading.StatusNormal}
				if rng.IntN(2000) == 0 {
					r.Status, r.Code, r.Err = reading.StatusFault, reading.CodeTimeout, "no reply"
				}
				recs = append(recs, record(t, r))
			}
		}
		b1, b2 := 0, 0
		for first := 0; first < len(recs); first += batchMax {
			last := min(first+batchMax, len(recs))
			h := contract.TelemetryHead{Seq: uint64(first/batchMax + 1), Epoch: 1, First: uint64(first + 1), Last: uint64(last)}
			v1, v2 := encodeBoth(t, sensors, h, recs[first:last])
			if first%(20*batchMax) == 0 {
				sameReadings(t, sensors, v1, v2)
			}
			b1, b2 = b1+len(v1), b2+len(v2)
		}
		per1, per2 := float64(b1)/float64(len(recs)), float64(b2)/float64(len(recs))
		t.Logf("500 sensors at 1 Hz, %s: %d readings in messages of %d: v1 %.1f bytes/reading, v2 %.2f bytes/reading (%.1f kB/s)",
			l.name, len(recs), batchMax, per1, per2, float64(b2)/60/1000)
		if per2 > l.max {
			t.Errorf("%s: v2 costs %.2f bytes per reading, want at most %v", l.name, per2, l.max)
		}
	}
}

// The encoder's steady state does not allocate: its buffers are reused.
func TestTelemetryV2_EncoderReusesItsBuffers(t *testing.T) {
	var sensors []contract.PointSensor
	var recs [][]byte
	for i := range 200 {
		sensors = append(sensors, point(fmt.Sprintf("S-%03d", i), i, 2))
		recs = append(recs, record(t, reading.Reading{Sensor: sensors[i].ID, Time: time.UnixMilli(1700000000000), Value: float64(i) / 100, Status: reading.StatusNormal}))
	}
	x := contract.NewTelemetryV2Index(sensors)
	e := contract.NewTelemetryV2Encoder("gw-01", "site-0001")
	out := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(20, func() {
		e.Begin(contract.TelemetryHead{Seq: 1, First: 1, Last: 200}, x)
		for _, r := range recs {
			if err := e.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		out = e.Finish(out[:0])
	})
	if allocs > 0 {
		t.Errorf("%v allocations per message of 200 readings, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(20, func() {
		e.Begin(contract.TelemetryHead{Seq: 1, First: 1, Last: 200}, x)
		for i, s := range sensors {
			e.AddValue(s.ID, 1700000000000, float64(i)/100, "normal", "")
		}
		out = e.Finish(out[:0])
	})
	if allocs > 0 {
		t.Errorf("AddValue: %v allocations per message of 200 readings, want 0", allocs)
	}
}

// Records that are not readings are refused (the store dead-letters them).
func TestTelemetryV2_RefusesARecordThatIsNotAReading(t *testing.T) {
	e := contract.NewTelemetryV2Encoder("gw", "s")
	e.Begin(contract.TelemetryHead{Seq: 1}, nil)
	for _, bad := range []string{``, `[]`, `{"sensor":"X"}`, `{"sensor":"X","ts":"1","status":"normal"}`, `{"sensor":"X","ts":1,"status":"normal"`} {
		if err := e.Add([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestValidate_TelemetryV2RejectsMalformed(t *testing.T) {
	ok := `{"v":2,"agent":"a","site":"s","seq":1,"historical":false,"reg":"","t0":5,"d":[[0,"X","1"]]}`
	if err := contract.Validate(contract.KindTelemetryV2, []byte(ok)); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"no groups":       `{"v":2,"agent":"a","site":"s","seq":1,"historical":false,"reg":"","t0":5,"d":[]}`,
		"group w/o value": `{"v":2,"agent":"a","site":"s","seq":1,"historical":false,"reg":"","t0":5,"d":[[0,1]]}`,
		"float value":     `{"v":2,"agent":"a","site":"s","seq":1,"historical":false,"reg":"","t0":5,"d":[[0,1,0.5]]}`,
		"fault w/o code":  `{"v":2,"agent":"a","site":"s","seq":1,"historical":false,"reg":"","t0":5,"d":[[0,1,null]],"s":[[0,"fault"]]}`,
		"code on alarm":   `{"v":2,"agent":"a","site":"s","seq":1,"historical":false,"reg":"","t0":5,"d":[[0,1,2]],"s":[[0,"alarm","timeout"]]}`,
		"bad reg":         `{"v":2,"agent":"a","site":"s","seq":1,"historical":false,"reg":"xyz","t0":5,"d":[[0,1,2]]}`,
		"v1":              `{"v":1,"agent":"a","site":"s","seq":1,"historical":false,"reg":"","t0":5,"d":[[0,1,2]]}`,
	}
	for name, p := range bad {
		if err := contract.Validate(contract.KindTelemetryV2, []byte(p)); err == nil {
			t.Errorf("%s: accepted %s", name, p)
		}
	}
}

func TestSplitTelemetry_BothAndEither(t *testing.T) {
	v1, v2 := []byte(`{"v":1,"x":"a"}`), []byte(`{"v":2,"y":1}`)
	for _, c := range []struct{ in, w1, w2 []byte }{{contract.JoinTelemetry(v1, v2), v1, v2}, {v1, v1, nil}, {v2, nil, v2}} {
		a, b := contract.SplitTelemetry(c.in)
		if string(a) != string(c.w1) || string(b) != string(c.w2) || (c.w1 == nil) != (a == nil) || (c.w2 == nil) != (b == nil) {
			t.Errorf("split %s = %s | %s", c.in, a, b)
		}
	}

}

// batchMax is the default readings per telemetry message (mqtt.batch_max).
const batchMax = 200

// AddValue, for records that are not encoded Readings, writes exactly what
// Add writes for the Reading FromReading makes of the same fields.
func TestTelemetryV2_AddValueMatchesAdd(t *testing.T) {
	var sensors []contract.PointSensor
	for i := range 10 {
		sensors = append(sensors, point(fmt.Sprintf("S-%d", i), i, i%4))
	}
	x := contract.NewTelemetryV2Index(sensors)
	rng := rand.New(rand.NewPCG(5, 6))
	values := []float64{0, -0.5, 12.25, 1e-7, 3.4e21, -273.15, 0.1 + 0.2, 123456789.125, 1.5e-3, 7, math.NaN(), math.Inf(-1), 1e-9, 5e-324}
	var rs []reading.Reading
	for i := range 300 {
		r := reading.Reading{Sensor: fmt.Sprintf("S-%d", rng.IntN(12)), Type: "methane", Unit: "%CH4",
			Time: time.UnixMilli(1700000000000 + int64(i/5)*100), Value: values[rng.IntN(len(values))], Status: reading.StatusNormal}
		if rng.IntN(2) == 0 {
			r.Value = math.Round(rng.Float64()*1e5) / 1000
		}
		switch rng.IntN(6) {
		case 0:
			r.Status, r.Code, r.Err = reading.StatusFault, reading.CodeTimeout, "no reply"
		case 1:
			r.Status = reading.StatusFault // no code
		case 2:
			r.Status = reading.StatusAlarm
		}
		rs = append(rs, r)
	}
	h := contract.TelemetryHead{Seq: 4, Epoch: 1, First: 10, Last: 309}
	byRecord, byValue := contract.NewTelemetryV2Encoder("gw", "s"), contract.NewTelemetryV2Encoder("gw", "s")
	byRecord.Begin(h, x)
	byValue.Begin(h, x)
	for _, r := range rs {
		if err := byRecord.Add(record(t, r)); err != nil {
			t.Fatal(err)
		}
		byValue.AddValue(r.Sensor, r.Time.UnixMilli(), r.Value, string(r.Status), string(r.Code))
	}
	a, b := byRecord.Finish(nil), byValue.Finish(nil)
	if string(a) != string(b) {
		t.Fatalf("Add and AddValue differ:\n%s\n%s", a, b)
	}
	if err := contract.Validate(contract.KindTelemetryV2, b); err != nil {
		t.Fatal(err)
	}
}
