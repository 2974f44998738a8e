// Package stats computes the statistics the bureau's dispatch and
// statistical analysis take (the coal-mine networking formats carry
// 5-minute statistics, MT/T 1201.1-2023 TJSJ: window, max and its time, min
// and its time, mean): for each window of the wall clock aligned to
// Interval, per analog sensor the count, mean, extremes with their times,
// fault readings and the seconds in each status; per output the seconds cut
// and the cuts; and the alarms raised per level.
//
// An Aggregator is fed incrementally (Reading, Alarm, Outputs) and
// allocates nothing per reading once every sensor has been seen in each
// status it takes. It is not safe for concurrent use: one goroutine owns it.
package stats

import (
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// DefaultInterval is the statistics window: 5 minutes, the statistics
// cadence of the coal-mine networking formats (networking notes, S).
const DefaultInterval = 5 * time.Minute

// statuses the seconds are counted in, in a fixed order (no map per reading).
var statuses = [...]reading.Status{
	reading.StatusNormal, reading.StatusFault, reading.StatusAlarm, reading.StatusAlarm2, reading.StatusCutoff,
	reading.StatusCalibrating, reading.StatusBlue, reading.StatusYellow, reading.StatusOrange, reading.StatusRed,
}

func statusIndex(s reading.Status) int {
	for i, x := range statuses {
		if x == s {
			return i
		}
	}
	return 0
}

// SensorSpec is one sensor the statistics cover; Analog sensors get
// count, mean and extremes (a switch's 0/1 values have none worth taking).
type SensorSpec struct {
	ID     string
	Analog bool
}

// Sensor is one sensor's statistics in a Window. Mean..MinAt are
// meaningful only if Count > 0.
type Sensor struct {
	Analog       bool
	Count        int // valid readings
	Sum          float64
	Max, Min     float64
	MaxAt, MinAt time.Time
	Faults       int                    // fault readings
	StatusS      [len(statuses)]float64 // seconds in each status, by statuses' order
	statusKnown  bool                   // last status is known (carried between windows)
	lastStatus   reading.Status         //
	lastAt       time.Time              // time up to which StatusS is counted
}

// Mean is Sum / Count (0 without readings).
func (s *Sensor) Mean() float64 {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / float64(s.Count)
}

// Seconds returns the seconds spent in each status that had any.
func (s *Sensor) Seconds() map[string]float64 {
	m := map[string]float64{}
	for i, v := range s.StatusS {
		if v > 0 {
			m[string(statuses[i])] = v
		}
	}
	return m
}

// Output is one output's statistics in a Window: the seconds it was
// physically cut (read back) and how many times it was cut.
type Output struct {
	CutS float64
	Cuts int
}

// Window is one closed statistics window.
type Window struct {
	From, To time.Time
	// Partial: the agent was not running for part of the window.
	Partial bool
	Sensors map[string]*Sensor
	Outputs map[string]Output
	Alarms  map[string]int // alarms raised, by level
}
