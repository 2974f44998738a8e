package metrics

import (
	"slices"
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

// FaultCode is the code label of a fault reading in
// hazmon_reading_faults_total: its reading.FaultCode (the vocabulary of
// fault readings on the wire), reading.CodeUnknown if it has none. It does
// not allocate.
func FaultCode(r reading.Reading) string {
	if r.Code != "" {
		return string(r.Code)
	}
	return string(reading.CodeUnknown)
}
