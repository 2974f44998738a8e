package config

import (
	"fmt"
	"time"

	"github.com/hazmon/hazmon/internal/safety"
)

// Polling limits. GB 50581-2010 §3.1.4: a methane over-limit cut-off and
// the ventilation-power interlock act within 2 s; the polling cycle of the
// whole monitoring system is at most 30 s.
const (
	// MaxPollPeriod is the longest period a bus sensor is polled at, also
	// when an over-subscribed bus slows down the reads that are not on
	// time (GB 50581-2010 §3.1.4: polling cycle ≤ 30 s).
	MaxPollPeriod = 30 * time.Second
	// MaxCutWait is the longest a cut may wait for its bus: the
	// transaction in flight ahead of it plus its own (GB 50581-2010
	// §3.1.4: act within 2 s). It bounds the timeout of a bus that carries
	// on-time sensors or output coils to MaxCutWait / 2.
	MaxCutWait = 2 * time.Second
	// MaxCutFaultAfter is the largest fault_after of a sensor whose rules
	// cut outputs: a dead slave is then detected, and its fault lockout
	// starts, within 2 × interval + timeout (GB 50581-2010 §3.1.4).
	MaxCutFaultAfter = 2
	// MethaneStaleMargin bounds the stale_after of a methane sensor with a
	// cut-off to interval + 2 s: when its readings stop, the cut-off's fault
	// lockout acts within 2 s of the reading that did not come
	// (GB 50581-2010 §3.1.4).
	MethaneStaleMargin = 2 * time.Second
	// StalePeriods is the default stale_after in poll periods.
	StalePeriods = 3
)

// OnTime reports whether the reads of sensor sensorID are kept on time by
// its bus poller: never slowed down on an over-subscribed bus and taken
// before the other reads that are due. A sensor is on time when its rules
// cut outputs (a cut-off rule, or any rule naming outputs, which includes
// the fault lockout of on_fault: cut), when it is an output's feed
// contact, or when it is a methane sensor: the reads a cut-off or the
// ventilation-power interlock depends on (GB 50581-2010 §3.1.4). An
// unknown id is not on time.
func (c *Config) OnTime(sensorID string) bool {
	for _, s := range c.Sensors {
		if s.ID == sensorID {
			return c.onTime(s)
		}
	}
	return false
}

func (c *Config) onTime(s Sensor) bool {
	if cutsOutputs(s) {
		return true
	}
	for _, o := range c.Outputs {
		if o.Feed != "" && o.Feed == s.ID {
			return true
		}
	}
	return false
}

// cutsOutputs reports whether s's rules cut outputs: a methane sensor, a
// cut-off rule, or a rule naming outputs (raised, or faulty with on_fault
// cut).
func cutsOutputs(s Sensor) bool {
	if s.Type == "methane" {
		return true
	}
	rs, _ := effectiveRules(s)
	for _, r := range rs {
		if r.Level == safety.LevelCutoff || len(r.Outputs) > 0 {
			return true
		}
	}
	return false
}

// methaneCutoff reports whether s is a methane sensor with a cut-off rule.
func methaneCutoff(s Sensor) bool {
	if s.Type != "methane" {
		return false
	}
	rs, _ := effectiveRules(s)
	for _, r := range rs {
		if r.Level == safety.LevelCutoff {
			return true
		}
	}
	return false
}

// FaultAfterOrDefault returns the sensor's fault_after, DefaultFaultAfter
// when unset.
func (s Sensor) FaultAfterOrDefault() int {
	if s.FaultAfter == nil {
		return DefaultFaultAfter
	}
	return *s.FaultAfter
}

// staleness is how a sensor's stale_after comes about.
type staleness struct {
	period     time.Duration // the slowest the sensor is polled in normal operation
	timeout    time.Duration // its bus's per-transaction timeout; 0 for a gpio input
	faultAfter int           // its fault_after; 1 for a gpio input
	gap        time.Duration // the longest normal gap between two of its readings
	limit      time.Duration // the most stale_after may be; 0 = no limit
	def        time.Duration // the default stale_after
	value      time.Duration // stale_after as it runs: the configured one, else def
}

// staleness computes s's stale_after. The longest normal gap between two
// readings is fault_after periods (fault_after - 1 polls missed, each
// retried within its period) plus the reply time of the poll that
// succeeds (at most one timeout); a sensor that is not on time may be
// polled as slowly as MaxPollPeriod on an over-subscribed bus. The default
// is StalePeriods periods, and never below that gap; for a methane sensor
// with a cut-off it is at most interval + MethaneStaleMargin.
func (c *Config) staleness(s Sensor) staleness {
	iv := s.Interval.D()
	if iv <= 0 {
		iv = DefaultInterval
	}
	st := staleness{period: iv, faultAfter: 1}
	if s.GPIO == nil {
		st.faultAfter = s.FaultAfterOrDefault()
		if b := c.Bus(s.Bus); b != nil {
			st.timeout = b.Timeout.D()
		}
		if !c.onTime(s) {
			st.period = max(iv, MaxPollPeriod)
		}
	}
	st.gap = time.Duration(st.faultAfter)*st.period + st.timeout
	st.def = max(StalePeriods*st.period, st.gap)
	if methaneCutoff(s) {
		st.limit = iv + MethaneStaleMargin
		st.def = min(st.def, st.limit)
	}
	st.value = st.def
	if s.StaleAfter > 0 {
		st.value = s.StaleAfter.D()
	}
	return st
}

// validatePolling checks fault_after, stale_after and the timeouts of the
// buses that carry cuts.
func (c *Config) validatePolling(k *checker) {
	for i, s := range c.Sensors {
		p := fmt.Sprintf("sensors[%d]", i)
		if s.GPIO != nil && s.FaultAfter != nil {
			k.warnf(p+".fault_after", "applies to bus sensors only; a gpio input reads no bus")
		}
		f := s.FaultAfterOrDefault()
		iv := s.Interval.D()
		if s.FaultAfter != nil && f < 1 {
			k.errf(p+".fault_after", "%d: must be at least 1 (1 = fault at the first failed poll)", f)
		} else if s.GPIO == nil && f > MaxCutFaultAfter && cutsOutputs(s) {
			var timeout time.Duration
			if b := c.Bus(s.Bus); b != nil {
				timeout = b.Timeout.D()
			}
			k.errf(p+".fault_after", "%d: this sensor's rules cut outputs, and a dead slave must cut them within 2 × interval + timeout = %s (GB 50581-2010 §3.1.4), but %d failed polls take up to %s; use at most %d",
				f, 2*iv+timeout, f, time.Duration(f)*iv+timeout, MaxCutFaultAfter)
		}
		if s.StaleAfter < 0 {
			k.errf(p+".stale_after", "must not be negative")
			continue
		}
		if f < 1 || iv <= 0 {
			continue // reported above or by the interval check
		}
		st := c.staleness(s)
		why := fmt.Sprintf("fault_after %d × interval %s + timeout %s", st.faultAfter, st.period, st.timeout)
		if st.period != iv {
			why = fmt.Sprintf("fault_after %d × %s, the slowest an over-subscribed bus polls a sensor that is not on time, + timeout %s", st.faultAfter, st.period, st.timeout)
		}
		switch {
		case st.limit > 0 && st.gap > st.limit:
			k.errf(p+".interval", "%s: a methane sensor with a cut-off must be faulted within interval + %s = %s of its last reading (GB 50581-2010 §3.1.4), but its readings may normally be %s apart (%s): shorten the interval or the bus timeout, or set fault_after: 1",
				s.Interval, MethaneStaleMargin, st.limit, st.gap, why)
		case s.StaleAfter > 0 && st.value < st.gap:
			k.errf(p+".stale_after", "%s is shorter than the longest normal gap between this sensor's readings, %s (%s): one missed poll would fault it; use at least %s",
				s.StaleAfter, st.gap, why, st.gap)
		case st.limit > 0 && st.value > st.limit:
			k.errf(p+".stale_after", "%s: a methane sensor with a cut-off must be faulted within interval + %s = %s of its last reading (GB 50581-2010 §3.1.4); use at most %s",
				s.StaleAfter, MethaneStaleMargin, st.limit, st.limit)
		}
	}
	for i, b := range c.Buses {
		c.checkCutBus(k, fmt.Sprintf("buses[%d]", i), b)
	}
}

// checkCutBus rejects the timeout of a bus that carries on-time sensors or
// output coils when a cut could wait longer than MaxCutWait: one
// transaction in flight (its timeout; busy retries give way to a queued
// write) plus the coil write or the on-time read itself (its timeout).
func (c *Config) checkCutBus(k *checker, p string, b Bus) {
	coils, onTime := false, false
	for _, o := range c.Outputs {
		coils = coils || o.Modbus != nil && o.Modbus.Bus == b.Name
	}
	for _, s := range c.Sensors {
		onTime = onTime || s.GPIO == nil && s.Bus == b.Name && c.onTime(s)
	}
	t := b.Timeout.D()
	if !coils && !onTime || 2*t <= MaxCutWait {
		return
	}
	what := "coil write"
	if !coils {
		what = "the cut-off sensor's own read"
	}
	k.errf(p+".timeout", "%s: a cut-off on this bus could wait %s (read in flight %s + %s %s) > %s (GB 50581-2010 §3.1.4); use at most %s",
		b.Timeout, 2*t, t, what, t, MaxCutWait, MaxCutWait/2)
}
