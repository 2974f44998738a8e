package metrics

import (
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

func goVersion() string { return runtime.Version() }

// Counting a reading of a sensor already seen, valid or a fault of a code
// already seen, does not allocate: the recorder counts every reading.
func TestReadings_CountDoesNotAllocate(t *testing.T) {
	var c Readings
	ok := reading.Reading{Sensor: "CH4-101", Time: time.Now(), Value: 0.5, Status: reading.StatusNormal}
	bad := reading.Reading{Sensor: "CH4-101", Time: time.Now(), Status: reading.StatusFault,
		Err: "bus plc-1: slave 7: exception 2 (illegal data address) to function 0x03", Code: reading.CodeException}
	c.Count(ok)
	c.Count(bad)
	if n := testing.AllocsPerRun(1000, func() { c.Count(ok); c.Count(bad) }); n != 0 {
		t.Errorf("Count allocates %.1f times per pair of readings", n)
	}
	// 2 + 1001 pairs (AllocsPerRun runs once more to warm up).
	got := c.Counts([]string{"CH4-101", "T-1"})
	want := []SensorCounts{
		{Sensor: "CH4-101", Readings: 2004, Faults: []CodeCount{{Code: "exception", N: 1002}}},
		{Sensor: "T-1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
}

// A fault's code label is its reading's code, without allocating.
func TestFaultCode_IsTheReadingsCode(t *testing.T) {
	for _, code := range reading.FaultCodes() {
		r := reading.Reading{Sensor: "S", Status: reading.StatusFault, Err: "x", Code: code}
		if got := FaultCode(r); got != string(code) {
			t.Errorf("FaultCode(code %q) = %q", code, got)
		}
		if n := testing.AllocsPerRun(100, func() { FaultCode(r) }); n != 0 {
			t.Errorf("FaultCode(%q) allocates %.1f times", code, n)
		}
	}
	if got := FaultCode(reading.Reading{Status: reading.StatusFault, Err: "old record"}); got != string(reading.CodeUnknown) {
		t.Errorf("a fault without a code: %q", got)
	}
}
