// Package control is the running agent's local control channel: plain HTTP
// with JSON bodies over a Unix socket (config control.socket, mode 0660,
// group hazmon), never a TCP port. The agent serves it with a Backend
// (Listen, Server.Serve); the technician's CLI talks to it with a Client,
// which implements the same Backend interface.
//
// Routes (all under /v1):
//
//	GET  /v1/status                      → Status
//	POST /v1/probe          ProbeRequest → ProbeResult
//	POST /v1/output/test    OutputTestRequest → OutputTestResult
//	POST /v1/output/restore OutputRestoreRequest → OutputRestoreResult
//	POST /v1/calibrate      CalibrateRequest  → CalibrateResult
//	POST /v1/reload                      → ReloadResult
//	GET  /v1/buffer/stats                → BufferStats
//	GET  /v1/buffer/export?since=RFC3339&format=csv|jsonl → text stream
//	GET  /v1/metrics (and GET /metrics)  → Prometheus text format
//	GET  /v1/buffer/dead?format=csv|jsonl → text stream (the dead letters)
//
// Errors are {"error": "..."} with 400 (ErrInvalid), 404 (ErrNotFound),
// 501 (ErrUnavailable) or 500; the Client turns them back into errors that
// wrap the same sentinels.
package control

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// DefaultSocket is the control socket path when the config names none
// (the same as config.DefaultSocket; systemd's RuntimeDirectory=hazmon).
const DefaultSocket = "/run/hazmon/hazmon.sock"

// Agent states reported in Status.State.
const (
	StateStarting = "starting" // socket up, buffer/publisher/pollers not yet running
	StateRunning  = "running"
	StateStopping = "stopping" // pollers stopping, buffer draining
)

// Kinds of error, shared by server and client (errors.Is works on both sides).
var (
	// ErrNotRunning: no agent answers on the socket (no socket file, or a
	// stale one nobody listens on). The CLI falls back to direct access
	// where it can (probe, buffer).
	ErrNotRunning = errors.New("agent not running")
	// ErrUnavailable: the agent does not offer this function (yet), e.g.
	// output test before the outputs manager is wired.
	ErrUnavailable = errors.New("not available")
	// ErrNotFound: unknown bus, sensor or output name.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a malformed request (bad table, count, duration, format).
	ErrInvalid = errors.New("invalid request")
)

// Backend is what the agent offers the CLI. The agent implements it
// (internal/app); Client implements it over the socket. Methods must be
// safe for concurrent use.
type Backend interface {
	// Status is a snapshot of the whole agent.
	Status(ctx context.Context) (Status, error)
	// Probe is one read through the poller that owns req.Bus, queued
	// between its polls.
	Probe(ctx context.Context, req ProbeRequest) (ProbeResult, error)
	// OutputTest pulses the named output to its other state for d and
	// back, and reports the feed sensor's response.
	OutputTest(ctx context.Context, name string, d time.Duration) (OutputTestResult, error)
	// OutputRestore lifts what only a technician may lift on an output: the
	// latch of an output found cut by something else (output_mismatch) and
	// a reload's hold. It never overrides a rule.
	OutputRestore(ctx context.Context, name string) (OutputRestoreResult, error)
	// Calibrate flags the sensor as under calibration for d (d <= 0 ends
	// the calibration now).
	Calibrate(ctx context.Context, sensor string, d time.Duration) (CalibrateResult, error)
	// Reload re-reads and validates the config file and applies it; a bad
	// file leaves the running config in place and returns its errors.
	Reload(ctx context.Context) (ReloadResult, error)
	// BufferStats is the bbolt buffer's depth per stream.
	BufferStats(ctx context.Context) (BufferStats, error)
	// BufferExport writes every buffered record with a sample time at or
	// after since, in format "csv" or "jsonl", and returns how many.
	BufferExport(ctx context.Context, since time.Time, format string, w io.Writer) (int, error)
	// Metrics writes the agent's metrics in the Prometheus text format
	// 0.0.4 (MetricsContentType), gathered at the call. Nothing is written
	// when it returns an error.
	Metrics(ctx context.Context, w io.Writer) error
	// BufferDead writes the buffer's dead letters (records that could not
	// be formed into a message) in format "csv" or "jsonl", and returns
	// how many.
	BufferDead(ctx context.Context, format string, w io.Writer) (int, error)
}

// MetricsContentType is the media type of GET /metrics: the Prometheus
// text exposition format 0.0.4.
const MetricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// Status is the agent snapshot shown by `hazmon status` and `watch`.
// Times are unix milliseconds (0: never), ages and durations seconds.
type Status struct {
	State      string         `json:"state"` // StateStarting, StateRunning or StateStopping
	Version    string         `json:"version"`
	Agent      string         `json:"agent"`
	Site       string         `json:"site"`
	ConfigPath string         `json:"config_path"`
	NowTS      int64          `json:"now_ts"`     // agent clock when the snapshot was taken
	StartedTS  int64          `json:"started_ts"` // when Run began
	UptimeS    float64        `json:"uptime_s"`
	Sensors    []SensorStatus `json:"sensors"`
	Buses      []BusStatus    `json:"buses"`
	MQTT       MQTTStatus     `json:"mqtt"`
	Buffer     BufferStats    `json:"buffer"`
	Outputs    []OutputStatus `json:"outputs"`
	Alarms     []ActiveAlarm  `json:"alarms"` // sensors whose status is an alarm level
	Log        LogStatus      `json:"log"`
}

// LogStatus is the agent's own log (stderr, read by journald).
type LogStatus struct {
	// Dropped counts log lines dropped since the agent started because
	// the log sink did not take them (a stalled journald, a full pipe):
	// logging never holds up the safety path, so a line that does not fit
	// in the agent's bounded log queue is dropped, and the log says how
	// many once the sink drains.
	Dropped uint64 `json:"dropped"`
}

// SensorStatus is one sensor's last reading.
type SensorStatus struct {
	ID     string   `json:"id"`
	Type   string   `json:"type"`
	Bus    string   `json:"bus,omitempty"`
	Unit   string   `json:"unit"`
	Value  *float64 `json:"value"`  // nil when never read or in fault
	Status string   `json:"status"` // reading.Status; "" before the first reading
	Error  string   `json:"error,omitempty"`
	TS     int64    `json:"ts"`    // sample time of the last reading, 0 if none
	AgeS   float64  `json:"age_s"` // NowTS - TS in seconds; -1 if none
}

// BusStatus is one Modbus bus's counters (modbus.BusStats).
type BusStatus struct {
	Name      string  `json:"name"`
	Protocol  string  `json:"protocol"` // tcp or rtu
	Address   string  `json:"address"`  // host:port or serial device
	Connected bool    `json:"connected"`
	Requests  uint64  `json:"requests"`
	Errors    uint64  `json:"errors"`
	Timeouts  uint64  `json:"timeouts"`
	Busy      uint64  `json:"busy"`
	Missed    uint64  `json:"missed"`
	LastError string  `json:"last_error,omitempty"`
	RTTMs     float64 `json:"rtt_ms"` // last transaction, request to reply
}

// MQTTStatus is the broker link (publish.Link).
type MQTTStatus struct {
	Connected bool   `json:"connected"`
	Broker    string `json:"broker"`
	SinceTS   int64  `json:"since_ts"`
	LastError string `json:"last_error,omitempty"`
	InFlight  int    `json:"in_flight"`
}

// BufferStats is the bbolt buffer's state (store.Stats).
type BufferStats struct {
	Path       string                 `json:"path"`
	Pending    int                    `json:"pending"` // records not yet in a message
	Outbox     int                    `json:"outbox"`  // messages waiting for a PUBACK
	OldestTS   int64                  `json:"oldest_ts"`
	OldestAgeS float64                `json:"oldest_age_s"` // -1 when empty
	Bytes      int64                  `json:"bytes"`
	FileSize   int64                  `json:"file_size"`
	Streams    map[string]StreamStats `json:"streams"`
	// NotStored counts records the running agent could not buffer (queue
	// full, write error, disk full) since it started; each is reported in
	// a data_loss event. LastError is the last such error.
	NotStored uint64 `json:"not_stored"`
	LastError string `json:"last_error,omitempty"`
	// Epoch is the buffer epoch (1, incremented on every reset of a
	// damaged file), MemoryBytes what is held in memory not yet written
	// (all of it while the file cannot be written), Degraded why the
	// buffer is degraded (file unusable, disk stalled; "" when healthy).
	Epoch       uint64 `json:"epoch,omitempty"`
	MemoryBytes int64  `json:"memory_bytes"`
	Degraded    string `json:"degraded,omitempty"`
}

// StreamStats is one stream of the buffer.
type StreamStats struct {
	Pending  int    `json:"pending"`
	Outbox   int    `json:"outbox"`
	Memory   int    `json:"memory"` // records and messages not yet written to the file
	Dead     int    `json:"dead"`   // dead letters (hazmon buffer export --dead)
	LastSeq  uint64 `json:"last_seq"`
	LastRec  uint64 `json:"last_rec"`
	OldestTS int64  `json:"oldest_ts"`
	Evicted  uint64 `json:"evicted"`
}

// OutputStatus is one configured output (relay or coil).
type OutputStatus struct {
	Name   string `json:"name"`
	State  string `json:"state"`            // "on" (power allowed), "cut", or "unknown"
	Feed   string `json:"feed,omitempty"`   // feed sensor id
	Detail string `json:"detail,omitempty"` // e.g. "feed fault: power present while cut"
}

// ActiveAlarm is a sensor whose status is an alarm level (alarm, alarm2,
// cutoff, blue, yellow, orange, red).
type ActiveAlarm struct {
	Sensor string   `json:"sensor"`
	Level  string   `json:"level"`
	Value  *float64 `json:"value"`
	Unit   string   `json:"unit"`
	TS     int64    `json:"ts"`
}

// ProbeRequest is one read: count registers (holding, input) or bits
// (coil, discrete) at the 0-based address of a slave.
type ProbeRequest struct {
	Bus     string `json:"bus"`
	Slave   int    `json:"slave"`
	Table   string `json:"table"`
	Address int    `json:"address"`
	Count   int    `json:"count"`
}

// ProbeResult is a probe's raw answer: Registers for holding/input, Bits
// for coil/discrete.
type ProbeResult struct {
	Via       string   `json:"via"` // "agent" or "direct"
	Bus       string   `json:"bus,omitempty"`
	Slave     int      `json:"slave"`
	Table     string   `json:"table"`
	Address   int      `json:"address"`
	Registers []uint16 `json:"registers,omitempty"`
	Bits      []bool   `json:"bits,omitempty"`
	RTTMs     float64  `json:"rtt_ms"`
}

// OutputTestRequest is the body of POST /v1/output/test.
type OutputTestRequest struct {
	Name string  `json:"name"`
	ForS float64 `json:"for_s"`
}

// OutputTestResult reports a relay pulse: which state was held, and what
// the feed sensor saw.
type OutputTestResult struct {
	Name         string  `json:"name"`
	Action       string  `json:"action"` // "cut" or "restore": the state held during the test
	HeldS        float64 `json:"held_s"`
	Feed         string  `json:"feed,omitempty"` // feed sensor id, "" if the output has none
	FeedResponse string  `json:"feed_response"`  // e.g. "power absent after 0.12 s"
	FeedOK       *bool   `json:"feed_ok"`        // nil without a feed sensor
	Final        string  `json:"final"`          // state after the test: "on" or "cut"
}

// OutputRestoreRequest is the body of POST /v1/output/restore.
type OutputRestoreRequest struct {
	Name string `json:"name"`
}

// OutputRestoreResult says what the restore lifted and the output's state
// after it (Final "cut" with Why when a rule still demands the cut).
type OutputRestoreResult struct {
	Name   string `json:"name"`
	Lifted string `json:"lifted"`
	Final  string `json:"final"` // "on" or "cut"
	Why    string `json:"why,omitempty"`
}

// CalibrateRequest is the body of POST /v1/calibrate; ForS <= 0 stops.
type CalibrateRequest struct {
	Sensor string  `json:"sensor"`
	ForS   float64 `json:"for_s"`
}

// CalibrateResult says until when the sensor is flagged (UntilTS 0: ended).
type CalibrateResult struct {
	Sensor  string `json:"sensor"`
	UntilTS int64  `json:"until_ts"`
}

// ReloadResult is the answer to a successful reload. Changed is false
// when the file equals the running config (nothing was applied, nothing
// restarted); an agent that does not report it also reads as false. The
// counts are the running config's after the reload.
type ReloadResult struct {
	ConfigPath string   `json:"config_path"`
	Changed    bool     `json:"changed"`
	Buses      int      `json:"buses"`
	Sensors    int      `json:"sensors"`
	Outputs    int      `json:"outputs"`
	Warnings   []string `json:"warnings,omitempty"`
}

// RefusedError is a request the agent refused for a list of reasons, e.g.
// a reload of a file with config errors (the running config stays). It
// matches ErrInvalid with errors.Is and crosses the socket intact.
type RefusedError struct {
	What     string   // e.g. "reload refused (the running config stays)"
	Problems []string // one reason each, e.g. "hazmon.yaml:12: sensors[0].colour: unknown key \"colour\""
}

// Error returns What, then each problem on its own indented line.
func (e *RefusedError) Error() string {
	var b strings.Builder
	b.WriteString(e.What)
	if len(e.Problems) > 0 {
		b.WriteString(":")
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	return b.String()
}

// Unwrap makes a RefusedError match ErrInvalid.
func (e *RefusedError) Unwrap() error { return ErrInvalid }

// NotRunningError says no agent answers on the control socket at Path. It
// matches ErrNotRunning. Why is "" when there is no socket file, or e.g.
// "stale socket file, nobody listening"; Hint (Client.Hint) says where the
// path came from and how to point elsewhere.
type NotRunningError struct {
	Path, Why, Hint string
}

// Error returns e.g. "no agent answers at /run/hazmon/hazmon.sock
// (default; give --config FILE to use its control.socket, or --socket PATH)".
func (e *NotRunningError) Error() string {
	var notes []string
	for _, n := range []string{e.Why, e.Hint} {
		if n != "" {
			notes = append(notes, n)
		}
	}
	msg := "no agent answers at " + e.Path
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return msg
}

// Unwrap makes a NotRunningError match ErrNotRunning.
func (e *NotRunningError) Unwrap() error { return ErrNotRunning }

// errorBody is the JSON body of every error reply.
type errorBody struct {
	Error    string   `json:"error"`
	Kind     string   `json:"kind,omitempty"`     // "invalid", "not_found", "unavailable"
	Problems []string `json:"problems,omitempty"` // a RefusedError's reasons; Error then starts with its What
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func duration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
