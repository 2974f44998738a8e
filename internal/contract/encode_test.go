package contract

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAppendReading_SameBytesAsMarshal: the hand-written encoder of the
// buffered telemetry record and the current snapshot writes exactly the
// bytes contract.Marshal (encoding/json) writes, for values, nulls,
// faults with reasons and codes, and strings with quotes, control
// characters, HTML characters and non-ASCII text.
func TestAppendReading_SameBytesAsMarshal(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cases := []Reading{
		{Sensor: "CH4-101", Type: "methane", TS: 1764403200123, Value: f(1.5), Unit: "%CH4", Status: "cutoff"},
		{Sensor: "T1", Type: "temperature", TS: 0, Value: f(-0.000001), Unit: "°C", Status: "normal"},
		{Sensor: "P", Type: "pressure", TS: -1, Value: f(1e21), Unit: "kPa", Status: "alarm"},
		{Sensor: "P", Type: "pressure", TS: 1, Value: f(1e-7), Unit: "kPa", Status: "normal"},
		{Sensor: "P", Type: "pressure", TS: 1, Value: f(123456789.125), Unit: "", Status: "normal"},
		{Sensor: "FT\"1\\", Type: "flow", TS: 5, Unit: "m3/h", Status: "fault", Error: "bus site: slave 3: read holding 7: timeout <500ms> & more\n\t\x01", Code: "timeout"},
		{Sensor: "水位-1", Type: "water_level", TS: 5, Unit: "m", Status: "fault", Error: "line\u2028sep\u2029 and \xff bad utf-8"},
		{Sensor: "X", Type: "state", TS: 5, Value: f(0), Unit: "", Status: "normal", Code: "nan"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		cases = append(cases, Reading{Sensor: string(b), Type: "t", TS: rng.Int64(), Value: f(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))),
			Unit: string(b[:len(b)/2]), Status: "normal", Error: string(b[len(b)/3:])})
	}
	for _, r := range cases {
		want, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendReading(nil, r); !bytes.Equal(got, want) {
			t.Errorf("AppendReading\n got %s\nwant %s", got, want)
		}
	}
}

// TestAppendReading_NoAllocation: into a buffer with room, encoding a
// reading of plain ASCII allocates nothing.
func TestAppendReading_NoAllocation(t *testing.T) {
	v := 0.42
	r := Reading{Sensor: "CH4-101", Type: "methane", TS: 1764403200123, Value: &v, Unit: "%CH4", Status: "normal"}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(1000, func() { buf = AppendReading(buf[:0], r) }); n != 0 {
		t.Fatalf("%v allocations per reading", n)
	}
}

// TestAppendTelemetry_SameBytesAsMarshal: the v1 envelope joined by hand
// from readings AppendReading encoded is byte for byte what Marshal
// writes: with and without epoch and rec, historical or not, agent and
// site names that need escaping, one reading or many.
func TestAppendTelemetry_SameBytesAsMarshal(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"gw-01", "site-0001", "", "a<b>&c", "\"q\"\\", "矿-1", "x\u2028y", "\x01\xff"}
	for n := range 300 {
		tm := Telemetry{V: Version, Agent: names[rng.IntN(len(names))], Site: names[rng.IntN(len(names))],
			Seq: rng.Uint64() >> rng.IntN(64), Historical: n%2 == 0}
		if n%3 != 0 {
			tm.Epoch = uint64(1 + rng.IntN(5))
		}
		if n%5 != 0 {
			first := rng.Uint64() >> 8
			tm.Rec = []uint64{first, first + uint64(rng.IntN(500))}
		}
		for range 1 + rng.IntN(20) {
			r := Reading{Sensor: names[rng.IntN(len(names))], Type: "methane", TS: rng.Int64(), Value: f(rng.NormFloat64()),
				Unit: "%CH4", Status: "normal"}
			if rng.IntN(4) == 0 {
				r.Value, r.Status, r.Error, r.Code = nil, "fault", "timeout <1s> & "+names[rng.IntN(len(names))], "timeout"
			}
			tm.Readings = append(tm.Readings, AppendReading(nil, r))
		}
		want, err := Marshal(tm)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendTelemetry(nil, tm); !bytes.Equal(got, want) {
			t.Fatalf("AppendTelemetry\n got %s\nwant %s", got, want)
		}
	}
}
