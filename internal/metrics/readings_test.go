package metrics

import (
	"math"
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
		Err: "bus plc-1: slave 7: exception 2 (illegal data address) to function 0x03"}
	c.Count(ok)
	c.Count(bad)
	if n := testing.AllocsPerRun(1000, func() { c.Count(ok); c.Count(bad) }); n != 0 {
		t.Errorf("Count allocates %.1f times per pair of readings", n)
	}
	// 2 + 1001 pairs (AllocsPerRun runs once more to warm up).
	got := c.Counts([]string{"CH4-101", "T-1"})
	want := []SensorCounts{
		{Sensor: "CH4-101", Readings: 2004, Faults: []CodeCount{{Code: "exception_2", N: 1002}}},
		{Sensor: "T-1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
}

// Each fault reason the agent's sources produce maps to its code, without
// allocating.
func TestFaultCode_FromTheReasonsTheSourcesWrite(t *testing.T) {
	for err, want := range map[string]string{
		"bus B: slave 7: timeout: no reply in 500ms":                                       CodeTimeout,
		"bus B: slave 7: timeout: not answering, 3 polls in a row, next try in 2s":         CodeTimeout,
		"bus B: slave 7: bus down: dial tcp 127.0.0.1:5020: connect: connection refused":   CodeBusDown,
		"bus B: slave 7: bus down: read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout":         CodeBusDown,
		"bus B: bus down: /dev/ttyUSB0: serial port in use by pid 12":                      CodePortInUse,
		"bus B stalled: no transaction completed within 3 × its timeout":                   CodeBusStalled,
		"bus B: slave 7: CRC mismatch in reply":                                            CodeCRC,
		"bus B: slave 7: malformed reply: reply from unit 8":                               CodeFrame,
		"bus B: slave 7: exception 2 (illegal data address) to function 0x03":              "exception_2",
		"bus B: slave 7: exception 11 (gateway target failed to respond) to function 0x04": "exception_11",
		"bus B: slave 7: exception 99 (unknown exception) to function 0x03":                CodeException,
		"5.12 outside range [0, 4]":                                                        CodeRange,
		"float32 is NaN":                                                                   CodeNotFinite,
		"float32 is +Inf":                                                                  CodeNotFinite,
		"raw 65535 is the sensor's no-value code":                                          CodeNoValue,
		"gpio gpiochip0 line 22: read: bad file descriptor":                                CodeGPIO,
		"something else": CodeUnknown,
	} {
		r := reading.Reading{Sensor: "S", Status: reading.StatusFault, Err: err}
		if got := FaultCode(r); got != want {
			t.Errorf("FaultCode(%q) = %q, want %q", err, got, want)
		}
		if n := testing.AllocsPerRun(100, func() { FaultCode(r) }); n != 0 {
			t.Errorf("FaultCode(%q) allocates %.1f times", err, n)
		}
	}
	if got := FaultCode(reading.Reading{Status: reading.StatusFault, Value: math.NaN()}); got != CodeNotFinite {
		t.Errorf("a NaN fault without a reason: %q", got)
	}
}
