package metrics

import (
	"runtime"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/safety"
)

// AgentStates are the values of hazmon_agent_state's state label
// (control.StateStarting, StateRunning, StateStopping).
var AgentStates = []string{"starting", "running", "stopping"}

// AlarmLevels are the levels hazmon_alarms_active always has a series
// for (0 when none is active): the rule levels, fault and the output and
// calibration alarms. An active alarm of another level adds its own.
var AlarmLevels = []string{
	string(safety.LevelAlarm), string(safety.LevelAlarm2), string(safety.LevelCutoff),
	string(safety.LevelBlue), string(safety.LevelYellow), string(safety.LevelOrange), string(safety.LevelRed),
	string(safety.LevelFault), safety.LevelFeedAbnormal, safety.LevelOutputMismatch,
	safety.LevelOutputUnconfirmed, safety.LevelCalibrationOverdue,
}

// rttBounds are modbus.RTTBuckets in seconds.
var rttBounds = func() []float64 {
	b := make([]float64, len(modbus.RTTBuckets))
	for i, d := range modbus.RTTBuckets {
		b[i] = d.Seconds()
	}
	return b
}()

// snapshotCollector turns one Snapshot into const metrics.
type snapshotCollector struct{ s *Snapshot }

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range families {
		ch <- f.desc
	}
}

// emitter sends const metrics; a metric that cannot be formed becomes an
// invalid metric, which fails the Gather.
type emitter chan<- prometheus.Metric

func (e emitter) gauge(f *family, v float64, labels ...string) {
	e.send(f, prometheus.GaugeValue, v, labels)
}

func (e emitter) counter(f *family, v float64, labels ...string) {
	e.send(f, prometheus.CounterValue, v, labels)
}

func (e emitter) send(f *family, t prometheus.ValueType, v float64, labels []string) {
	m, err := prometheus.NewConstMetric(f.desc, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(f.desc, err)
	}
	e <- m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s, e := c.s, emitter(ch)
	e.gauge(famBuildInfo, 1, s.Version, s.Commit, runtime.Version())
	for _, st := range AgentStates {
		e.gauge(famAgentState, b2f(s.State == st), st)
	}
	e.gauge(famCoreLoopAge, s.CoreLoopAge.Seconds())
	e.gauge(famCoreUp, b2f(s.Core != nil))
	e.counter(famOutboxLost, float64(s.OutboxLostReadings), "reading")
	e.counter(famOutboxLost, float64(s.OutboxLostUrgent), "urgent")
	for _, src := range s.Sources {
		e.counter(famOverruns, float64(src.Overruns), src.Name)
	}
	for _, sc := range s.Sensors {
		e.counter(famReadings, float64(sc.Readings), sc.Sensor)
		for _, f := range sc.Faults {
			e.counter(famFaults, float64(f.N), sc.Sensor, f.Code)
		}
	}
	for i := range s.Buses {
		c.bus(e, &s.Buses[i])
	}
	if s.Core != nil {
		c.core(e, s.Core)
	}
	e.gauge(famBufUsable, b2f(s.Buffer != nil))
	e.counter(famBufNotStored, float64(s.NotStored))
	if b := s.Buffer; b != nil {
		e.gauge(famBufBytes, float64(b.Bytes))
		e.gauge(famBufFile, float64(b.FileBytes))
		e.gauge(famBufLimit, float64(b.LimitBytes))
		for _, st := range b.Streams {
			e.gauge(famBufPending, float64(st.Pending), st.Name)
			e.gauge(famBufOutbox, float64(st.Outbox), st.Name)
			e.gauge(famBufOldest, st.OldestAge.Seconds(), st.Name)
			e.gauge(famBufLastSeq, float64(st.LastSeq), st.Name)
			e.counter(famBufEvicted, float64(st.Evicted), st.Name)
			if s.MQTT != nil {
				e.counter(famMQTTAcked, float64(st.Acked), st.Name)
			}
		}
	}
	if m := s.MQTT; m != nil {
		e.gauge(famMQTTConnected, b2f(m.Connected))
		since := 0.0
		if !m.Since.IsZero() {
			since = float64(m.Since.UnixMilli()) / 1000
		}
		e.gauge(famMQTTSince, since)
		e.gauge(famMQTTInFlight, float64(m.InFlight))
	}
	e.counter(famLogDropped, float64(s.LogDropped))
}

func (c snapshotCollector) bus(e emitter, b *Bus) {
	e.gauge(famBusConnected, b2f(b.Connected), b.Name)
	e.counter(famBusRequests, float64(b.Requests), b.Name)
	e.counter(famBusErrors, float64(b.Errors), b.Name)
	e.counter(famBusTimeouts, float64(b.Timeouts), b.Name)
	e.counter(famBusBusy, float64(b.Busy), b.Name)
	e.counter(famBusRetries, float64(b.Retries), b.Name)
	e.counter(famBusMissed, float64(b.MissedPolls), b.Name)
	e.counter(famBusSkipped, float64(b.Missed), b.Name)
	e.gauge(famBusLoad, b.Load, b.Name)
	h := &b.RTT
	buckets := make(map[float64]uint64, len(rttBounds))
	var cum uint64
	for i, ub := range rttBounds {
		cum += h.Counts[i]
		buckets[ub] = cum
	}
	m, err := prometheus.NewConstHistogram(famBusRTT.desc, h.Count(), h.Sum.Seconds(), buckets, b.Name)
	if err != nil {
		m = prometheus.NewInvalidMetric(famBusRTT.desc, err)
	}
	e <- m
}

func (c snapshotCollector) core(e emitter, k *Core) {
	for _, o := range k.Outputs {
		e.gauge(famOutCut, b2f(o.Cut), o.Name)
		if o.Known {
			e.gauge(famOutEnergised, b2f(o.Energised), o.Name)
		}
		e.gauge(famOutConfirmed, b2f(o.Confirmed), o.Name)
		e.gauge(famOutLatched, b2f(o.Latched), o.Name)
		e.gauge(famOutFeed, b2f(o.FeedAbnormal), o.Name)
		e.counter(famOutCuts, float64(o.Cuts), o.Name)
		e.counter(famOutCutSeconds, o.CutSeconds, o.Name)
	}
	n := map[string]int{}
	for _, l := range k.AlarmLevels {
		n[l]++
	}
	levels := slices.Clone(AlarmLevels)
	for l := range n {
		if !slices.Contains(levels, l) {
			levels = append(levels, l)
		}
	}
	for _, l := range levels {
		e.gauge(famAlarms, float64(n[l]), l)
	}
}
