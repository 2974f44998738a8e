package metrics

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hazmon/hazmon/internal/reading"
)

// Readings counts each sensor's evaluated readings and its fault readings
// by fault code (hazmon_readings_total, hazmon_reading_faults_total). The
// agent's recorder calls Count for every reading the safety core hands on;
// a scrape calls Counts. The zero value is ready to use and safe for
// concurrent use. Count holds the lock for a map look-up and two
// increments, and does not allocate once the sensor and the fault code
// have been seen (the first reading of a sensor, and the first fault of a
// code, allocate their entry).
type Readings struct {
	mu      sync.Mutex
	sensors map[string]*sensorCount
}

type sensorCount struct {
	readings uint64
	faults   map[string]uint64 // by fault code
}

// Count counts r: one reading of r.Sensor, and one fault of
// FaultCode(r) if r is a fault.
func (c *Readings) Count(r reading.Reading) {
	code := ""
	if r.Status == reading.StatusFault {
		code = FaultCode(r)
	}
	c.mu.Lock()
	s := c.sensors[r.Sensor]
	if s == nil {
		s = c.add(r.Sensor)
	}
	s.readings++
	if code != "" {
		s.faults[code]++
	}
	c.mu.Unlock()
}

// add creates the entry of a sensor not seen before. c.mu is held.
func (c *Readings) add(sensor string) *sensorCount {
	if c.sensors == nil {
		c.sensors = map[string]*sensorCount{}
	}
	s := &sensorCount{faults: map[string]uint64{}}
	c.sensors[strings.Clone(sensor)] = s // not the reading's string: the recorder reuses its batch
	return s
}

// Counts returns the counters of the sensors ids, in that order; a sensor
// without readings yet has zero counts.
func (c *Readings) Counts(ids []string) []SensorCounts {
	out := make([]SensorCounts, len(ids))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		out[i].Sensor = id
		s := c.sensors[id]
		if s == nil {
			continue
		}
		out[i].Readings = s.readings
		for code, n := range s.faults {
			out[i].Faults = append(out[i].Faults, CodeCount{Code: code, N: n})
		}
		slices.SortFunc(out[i].Faults, func(a, b CodeCount) int { return strings.Compare(a.Code, b.Code) })
	}
	return out
}

// Fault codes of hazmon_reading_faults_total's code label.
const (
	CodeBusStalled = "bus_stalled"  // the bus supervisor: no transaction completed within 3 × the timeout
	CodePortInUse  = "port_in_use"  // the serial port is held by another process
	CodeBusDown    = "bus_down"     // the port or connection is not usable
	CodeTimeout    = "timeout"      // no reply within the bus timeout, fault_after polls in a row
	CodeCRC        = "crc"          // a reply with a bad CRC (RTU)
	CodeFrame      = "frame"        // a malformed or ambiguous reply
	CodeException  = "exception"    // a Modbus exception reply; exception_N for code N of 1..11
	CodeRange      = "out_of_range" // the engineering value is outside the sensor's range
	CodeNotFinite  = "not_finite"   // NaN or infinite
	CodeNoValue    = "no_value"     // the raw value is one of the sensor's no_value codes
	CodeGPIO       = "gpio"         // a GPIO line that cannot be requested or read
	CodeUnknown    = "unknown"      // none of the above
)

// exceptionCodes are "exception_N" for the Modbus exception codes 1..11
// (Modbus Application Protocol v1.1b3 §7), made once so that FaultCode
// does not allocate.
var exceptionCodes = func() []string {
	c := make([]string, 12)
	for i := 1; i < len(c); i++ {
		c[i] = CodeException + "_" + strconv.Itoa(i)
	}
	return c
}()

// FaultCode is the fault code of a fault reading: one of the Code*
// constants or exception_N. It reads the reason text (reading.Err) until
// readings carry their code: when reading.Reading gains Code, return it
// here first (`if r.Code != "" { return r.Code }`). It does not allocate.
func FaultCode(r reading.Reading) string {
	e := r.Err
	switch {
	case e == "" && (math.IsNaN(r.Value) || math.IsInf(r.Value, 0)):
		return CodeNotFinite
	case strings.HasPrefix(e, "gpio "):
		return CodeGPIO
	case strings.Contains(e, "stalled"):
		return CodeBusStalled
	case strings.Contains(e, "serial port in use"):
		return CodePortInUse
	case strings.Contains(e, "bus down"):
		return CodeBusDown
	case strings.Contains(e, "timeout"):
		return CodeTimeout
	case strings.Contains(e, "CRC"):
		return CodeCRC
	case strings.Contains(e, "malformed reply"):
		return CodeFrame
	case strings.Contains(e, "exception "):
		return exceptionCode(e)
	case strings.Contains(e, "outside range"):
		return CodeRange
	case strings.Contains(e, "NaN"), strings.Contains(e, "Inf"), strings.Contains(e, "overflows"), strings.Contains(e, "non-finite"):
		return CodeNotFinite
	case strings.Contains(e, "no-value code"):
		return CodeNoValue
	}
	return CodeUnknown
}

// exceptionCode reads N of "exception N (name) to function 0xFF".
func exceptionCode(e string) string {
	rest := e[strings.Index(e, "exception ")+len("exception "):]
	n := 0
	for i := 0; i < len(rest) && i < 3 && rest[i] >= '0' && rest[i] <= '9'; i++ {
		n = n*10 + int(rest[i]-'0')
	}
	if n > 0 && n < len(exceptionCodes) {
		return exceptionCodes[n]
	}
	return CodeException
}
