// Package metrics is hazmon's Prometheus exposition: the metric families
// (Families, listed in README "Metrics"), the Snapshot the agent fills in
// at scrape time, Write that renders it in the Prometheus text format
// 0.0.4, Readings (the per-sensor reading and fault counters the
// recorder feeds) and Server, the optional TCP listener of metrics.listen.
//
// The exposition uses github.com/prometheus/client_golang: a pedantic
// registry per scrape with a collector of const metrics built from the
// Snapshot, plus the Go runtime and process collectors. Nothing here
// touches the agent's state: the agent gathers a Snapshot (bounded in
// time, from copies and snapshots, never holding a lock the safety path
// needs) and Write only formats it.
package metrics

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/hazmon/hazmon/internal/modbus"
)

// ContentType is the media type of Write's output (Prometheus text
// exposition format 0.0.4).
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// ScrapeCoreTimeout bounds how long a scrape waits for the safety core's
// snapshot (outputs, alarms). The core answers as soon as its loop is
// free (a request wakes it; it is never busy for long); a core that does
// not answer within it is reported as hazmon_core_up 0 instead of holding
// the scrape.
const ScrapeCoreTimeout = time.Second

// Snapshot is what one scrape reports. The agent fills it in (internal/app,
// metrics.go); a nil part is left out of the exposition.
type Snapshot struct {
	Version, Commit string // build (buildinfo)
	State           string // agent state: starting, running or stopping
	Sensors         []SensorCounts
	Buses           []Bus
	Sources         []Source
	// CoreLoopAge is the time since the safety core's loop last ran.
	CoreLoopAge time.Duration
	// OutboxLost: readings, and alarms and events (urgent), the safety
	// core's outbox dropped because it was full.
	OutboxLostReadings, OutboxLostUrgent uint64
	// Core is the safety core's snapshot, nil if it did not answer within
	// ScrapeCoreTimeout.
	Core *Core
	// Buffer is nil while the buffer is unusable; MQTT nil without a publisher.
	Buffer *Buffer
	MQTT   *MQTT
	// NotStored counts records the buffer refused since the agent started.
	NotStored  uint64
	LogDropped uint64
}

// SensorCounts are one sensor's reading counters (Readings.Counts).
type SensorCounts struct {
	Sensor   string
	Readings uint64
	Faults   []CodeCount // sorted by code
}

// CodeCount is the fault readings of one fault code.
type CodeCount struct {
	Code string
	N    uint64
}

// Bus is one Modbus bus's counters (modbus.BusStats).
type Bus struct {
	Name string
	modbus.BusStats
}

// Source is one producer's queue into the safety core.
type Source struct {
	Name     string
	Overruns uint64
}

// Core is what the safety core reported (safety.Snapshot).
type Core struct {
	Outputs     []Output
	AlarmLevels []string // the level of each active alarm
}

// Output is one output's state (safety.OutputState).
type Output struct {
	Name                             string
	Cut, Confirmed, Known, Energised bool
	Latched, FeedAbnormal            bool
	Cuts                             uint64
	CutSeconds                       float64
}

// Buffer is the store-and-forward buffer's state (store.Stats).
type Buffer struct {
	Streams                      []Stream
	Bytes, FileBytes, LimitBytes int64
}

// Stream is one buffer stream.
type Stream struct {
	Name             string
	Pending, Outbox  int
	OldestAge        time.Duration // 0 when nothing waits
	LastSeq, Evicted uint64
	// Acked counts the stream's messages the broker acknowledged since
	// the agent started.
	Acked uint64
}

// MQTT is the broker link (publish.Link).
type MQTT struct {
	Connected bool
	Since     time.Time // zero: never changed
	InFlight  int
}

// runtimeCollectors are the Go runtime's and the process's metrics (go_*,
// process_*), shared by every scrape's registry.
var runtimeCollectors = sync.OnceValue(func() []prometheus.Collector {
	return []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
})

// Write renders s, then the go_ and process_ families, in the Prometheus
// text format. A metric that cannot be formed (a duplicate series, which
// would be a defect) is an error and nothing is written.
func Write(w io.Writer, s *Snapshot) error {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(snapshotCollector{s}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	for _, c := range runtimeCollectors() {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("metrics: write: %w", err)
		}
	}
	return nil
}
