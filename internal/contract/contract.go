// Package contract holds the platform contract (v1): the Go types of every
// MQTT payload hazmon publishes, their encoding, the topic names and the
// JSON Schemas (draft 2020-12) that tests validate received payloads against.
// Compact telemetry (contract v2, …/telemetry/v2, opt-in) is in
// telemetry_v2.go.
//
// Encoding rules: times are unix milliseconds; a fault carries "value":null
// (never an invented number); every number must be finite, so encoding a
// NaN or ±Inf is an error rather than invalid JSON.
package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// Version is the contract version carried in every payload as "v".
const Version = 1

// DefaultTopicPrefix is the topic prefix used when the config sets none.
const DefaultTopicPrefix = "hazmon/v1"

// Message kinds: the last topic level and the name of the schema.
const (
	KindTelemetry = "telemetry" // QoS 1, not retained, own seq
	KindAlarm     = "alarm"     // QoS 1, not retained, own seq
	KindEvent     = "event"     // QoS 1, not retained, own seq
	KindStatus    = "status"    // QoS 1, retained; LWT = offline
	KindCurrent   = "current"   // QoS 1, retained, latest reading per sensor
	KindAlarms    = "alarms"    // QoS 1, retained, the active alarms
)

// Event types carried in Event.Type.
const (
	EventDataLoss    = "data_loss"    // readings evicted from the buffer before they were published
	EventBufferReset = "buffer_reset" // the buffer file was damaged: moved aside, a fresh one started, readable records salvaged into it
	EventBufferFault = "buffer_fault" // the buffer file cannot be written (I/O error, disk full, read-only): records are held in memory
	EventClockStep   = "clock_step"   // the wall clock stepped

	EventOutputRestore    = "output_restore"    // a technician restored a held output (subject: the output)
	EventOutputTestStart  = "output_test_start" // an output test cut an output (subject: the output)
	EventOutputTestEnd    = "output_test_end"   // the output test ended
	EventCalibrationStart = "calibration_start" // a sensor is under calibration (subject: the sensor)
	EventCalibrationStop  = "calibration_stop"  // its calibration ended
	EventCalibrationDue   = "calibration_due"   // its calibration is due within 24 h (subject: the sensor)
)

// Agent lifecycle event types carried in Event.Type, with their fields:
//
//   - start: the agent started; PreviousStop says how the last run ended
//     (StopClean, StopCrash or StopUnknown), Detail may say more.
//   - reload: a new config was applied without a restart; ConfigHashBefore
//     and ConfigHashAfter are the ConfigHash of the old and the new config
//     (the status message carries the new one as config_hash).
//   - buffer_fault: the buffer file cannot be used (an I/O error, a
//     read-only or full file system, a stalled disk) and the agent runs on
//     memory; Reason is a short machine word for the cause, Detail the
//     error text. The status message says degraded meanwhile.
const (
	EventStart  = "start"
	EventReload = "reload"
)

// How the previous run ended (Event.PreviousStop of a start event).
const (
	StopClean   = "clean"   // a clean shutdown (SIGTERM, outputs cut and confirmed)
	StopCrash   = "crash"   // the last run ended without its shutdown (kill, panic, power loss)
	StopUnknown = "unknown" // no record of the last run (first start, unreadable state file)
)

// Status states (Status.State).
const (
	StateOnline   = "online"   // running, monitoring and publishing
	StateDegraded = "degraded" // running with a fault the bureau must know (Status.Reasons say which)
	StateOffline  = "offline"  // stopped, or (the broker's will) gone without a word
)

// ErrNotFinite is returned when a value to encode is NaN or ±Inf.
var ErrNotFinite = errors.New("value is not a finite number")

// Topic returns "{prefix}/{site}/{agent}/{kind}".
func Topic(prefix, site, agent, kind string) string {
	if prefix == "" {
		prefix = DefaultTopicPrefix
	}
	return prefix + "/" + site + "/" + agent + "/" + kind
}

// Millis returns t as unix milliseconds, the time unit of the contract.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// Reading is one element of a telemetry "readings" array and of "current".
// Value is nil for a fault (encoded as null); Error (the reason, for
// people) and Code (one of reading.FaultCodes, for machines) are set for
// every fault and only for a fault.
type Reading struct {
	Sensor string   `json:"sensor"`
	Type   string   `json:"type"`
	TS     int64    `json:"ts"` // sample time, unix ms
	Value  *float64 `json:"value"`
	Unit   string   `json:"unit"`
	Status string   `json:"status"`
	Error  string   `json:"error,omitempty"`
	Code   string   `json:"code,omitempty"`
}

// notFinite is the reason of a reading whose value is NaN or infinite.
const notFinite = "value is not a finite number"

// FromReading converts a sample to its contract form. A fault (or a
// non-finite value, which can only be a decoding defect) gets a null
// value, a reason and a code: the producer's, else nan or inf for a
// non-finite value, else reading.CodeUnknown.
func FromReading(r reading.Reading) Reading {
	c := Reading{Sensor: r.Sensor, Type: r.Type, TS: Millis(r.Time), Unit: r.Unit, Status: string(r.Status)}
	nonFinite := math.IsNaN(r.Value) || math.IsInf(r.Value, 0)
	switch {
	case r.Status == reading.StatusFault:
		c.Error, c.Code = r.Err, string(r.Code)
		if c.Code == "" {
			c.Code = string(nonFiniteCode(r.Value))
		}
		if c.Error == "" {
			c.Error = "fault"
			if nonFinite {
				c.Error = notFinite
			}
		}
	case nonFinite:
		c.Status = string(reading.StatusFault)
		c.Error, c.Code = notFinite, string(nonFiniteCode(r.Value))
	default:
		v := r.Value
		c.Value = &v
	}
	return c
}

// nonFiniteCode is the code of a fault whose producer gave none: nan or inf
// for such a value, else unknown.
func nonFiniteCode(v float64) reading.FaultCode {
	switch {
	case math.IsNaN(v):
		return reading.CodeNaN
	case math.IsInf(v, 0):
		return reading.CodeInf
	}
	return reading.CodeUnknown
}

// Telemetry is the payload of {prefix}/{site}/{agent}/telemetry.
// Readings holds already-encoded Reading objects (as stored in the buffer).
//
// Rec is the range [first, last] of the record numbers of the readings it
// carries (one per reading, in order, contiguous): record numbers are
// assigned when the agent accepts a reading into its buffer, per stream,
// and are never reused, so a reading missing from the platform shows as a
// gap in rec, which a data_loss event with the same stream and rec
// explains. Epoch counts the buffer's resets (a damaged file replaced).
// Both are absent in messages formed by agents older than this contract
// addition.
type Telemetry struct {
	V          int               `json:"v"`
	Agent      string            `json:"agent"`
	Site       string            `json:"site"`
	Seq        uint64            `json:"seq"`
	Epoch      uint64            `json:"epoch,omitempty"`
	Rec        []uint64          `json:"rec,omitempty"`
	Historical bool              `json:"historical"`
	Readings   []json.RawMessage `json:"readings"`
}

// Alarm is the payload of {prefix}/{site}/{agent}/alarm: one alarm raised
// or cleared. AlarmID is unique per alarm and shared by its raised and
// cleared messages: "<sensor>/<level>/<direction>/<raise ms>" for a rule
// alarm (direction high, low or state), "<sensor>/<level>/<raise ms>"
// otherwise. V, Seq, Agent and Site are filled in when the message is
// formed for publishing (a buffered record omits them; a published one
// always has them).
//
// Rec ([n, n]) is the alarm's record number in the alarm stream and Epoch
// the buffer epoch, as in Telemetry.
type Alarm struct {
	V           int      `json:"v,omitempty"`
	Seq         uint64   `json:"seq,omitempty"`
	Epoch       uint64   `json:"epoch,omitempty"`
	Rec         []uint64 `json:"rec,omitempty"`
	AlarmID     string   `json:"alarm_id"`
	Agent       string   `json:"agent,omitempty"`
	Site        string   `json:"site,omitempty"`
	Sensor      string   `json:"sensor"`
	Level       string   `json:"level"`
	Direction   string   `json:"direction,omitempty"` // high|low|state for a rule alarm
	State       string   `json:"state"`               // raised|cleared
	TS          int64    `json:"ts"`
	Value       *float64 `json:"value"` // null if the sensor is in fault
	Limit       *float64 `json:"limit"`
	Outputs     []string `json:"outputs"`
	Calibration bool     `json:"calibration"`
	// Reason says why, where there is more to say than the level: a
	// fault's cause, a feed or output detail, "restart" (the alarm was
	// active when the agent last stopped: raised again with its old id, or
	// cleared because it no longer is), "reload" (the new config can no
	// longer clear it), "restored" (a technician restored the output).
	Reason string `json:"reason,omitempty"`
	// Code is a fault alarm's machine code, as on fault readings
	// (timeout, bus_down, range, stale, ...).
	Code string `json:"code,omitempty"`
	// Episode summarises the abnormal episode on a cleared alarm.
	Episode *Episode `json:"episode,omitempty"`
}

// Episode is the abnormal-episode summary carried by a cleared alarm: from
// its raise to its clear, the sensor's extreme values with their times and
// its mean (over the valid readings while it was raised; absent without
// any), and for an alarm that cuts outputs the seconds each output was
// actually cut (read back). Partial: the agent was not running for part of
// the episode (it was active when the agent last stopped).
type Episode struct {
	StartTS   int64              `json:"start_ts"`
	EndTS     int64              `json:"end_ts"`
	DurationS float64            `json:"duration_s"`
	Max       *float64           `json:"max,omitempty"`
	MaxTS     int64              `json:"max_ts,omitempty"`
	Min       *float64           `json:"min,omitempty"`
	MinTS     int64              `json:"min_ts,omitempty"`
	Mean      *float64           `json:"mean,omitempty"`
	CutS      map[string]float64 `json:"cut_s,omitempty"`
	Partial   bool               `json:"partial,omitempty"`
}

// Event is the payload of {prefix}/{site}/{agent}/event: something the
// bureau must know about the agent itself (data loss, buffer reset, ...).
// FromTS/ToTS/Readings/Reason are used by data_loss; zero values are omitted.
//
// ID is the event's own record number in the event stream (contiguous,
// never reused, like Telemetry.Rec); Epoch as in Telemetry. A data_loss
// event names the lost records: Stream and Rec [first, last] (record
// numbers of that stream; for the event stream, event ids). A
// buffer_reset event carries Salvaged (records copied from the damaged
// file) and Lost (records it held that could not be read; absent when the
// file was too damaged to count them).
type Event struct {
	V        int      `json:"v,omitempty"`
	Seq      uint64   `json:"seq,omitempty"`
	Epoch    uint64   `json:"epoch,omitempty"`
	ID       uint64   `json:"id,omitempty"`
	Agent    string   `json:"agent,omitempty"`
	Site     string   `json:"site,omitempty"`
	Type     string   `json:"type"`
	TS       int64    `json:"ts"`
	FromTS   int64    `json:"from_ts,omitempty"`
	ToTS     int64    `json:"to_ts,omitempty"`
	Readings int64    `json:"readings,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Stream   string   `json:"stream,omitempty"`
	Rec      []uint64 `json:"rec,omitempty"`
	Salvaged *int64   `json:"salvaged,omitempty"`
	Lost     *int64   `json:"lost,omitempty"`
	// Subject names what the event is about: the output of an output test
	// or restore, the sensor of a calibration.
	Subject string `json:"subject,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// PreviousStop (start events): StopClean, StopCrash or StopUnknown.
	PreviousStop string `json:"previous_stop,omitempty"`
	// ConfigHashBefore/After (reload events): ConfigHash of the old and
	// the new config.
	ConfigHashBefore string `json:"config_hash_before,omitempty"`
	ConfigHashAfter  string `json:"config_hash_after,omitempty"`
}

// Status is the retained payload of {prefix}/{site}/{agent}/status,
// republished on every change of state, reasons or config and on every
// connect.
//
// TS is when State and Reasons last changed (unix ms), not when the link
// came up: a reconnect republishes the same TS. The broker's last will is
// a Status with Will set and no TS, since an agent cannot know when it
// will vanish (the time it was received is the best estimate); its other
// fields are as of the connection it was registered on. BootID is random
// per process start, so a consumer tells a restart (new BootID) from a
// reconnect (same BootID).
type Status struct {
	V       int      `json:"v"`
	State   string   `json:"state"`             // StateOnline, StateDegraded or StateOffline
	Reasons []string `json:"reasons,omitempty"` // why degraded: present then, and only then
	TS      int64    `json:"ts,omitempty"`      // when State/Reasons last changed; absent in the will
	Will    bool     `json:"will,omitempty"`    // true only in the will
	BootID  string   `json:"boot_id"`           // 32 hex digits
	Version string   `json:"version"`
	// ConfigHash is the running config's ConfigHash ("" until the app
	// gives one).
	ConfigHash string   `json:"config_hash,omitempty"`
	Sensors    []string `json:"sensors"`
}

// Current is the retained payload of {prefix}/{site}/{agent}/current: the
// latest reading of every sensor. It is outside the seq streams.
type Current struct {
	V        int       `json:"v"`
	Agent    string    `json:"agent"`
	Site     string    `json:"site"`
	TS       int64     `json:"ts"`
	Readings []Reading `json:"readings"`
}

// ActiveAlarms is the retained payload of {prefix}/{site}/{agent}/alarms:
// every alarm raised and not yet cleared, republished on every change and
// every connect (an empty list when none). A consumer that starts, or an
// agent that restarts, has the active set here without replaying history.
// Each alarm is as published on the alarm topic, without v, seq, agent and
// site.
type ActiveAlarms struct {
	V      int     `json:"v"`
	Agent  string  `json:"agent"`
	Site   string  `json:"site"`
	TS     int64   `json:"ts"` // when the set last changed, unix ms
	Alarms []Alarm `json:"alarms"`
}

// Marshal encodes a payload after checking every float is finite.
// It accepts the payload types of this package (value or pointer).
func Marshal(v any) ([]byte, error) {
	if err := checkFinite(v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("contract: encode %T: %w", v, err)
	}
	return b, nil
}

func finite(p *float64, field string) error {
	if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
		return fmt.Errorf("contract: %s=%v: %w", field, *p, ErrNotFinite)
	}
	return nil
}

func checkFinite(v any) error {
	switch x := v.(type) {
	case Reading:
		if x.Value != nil && (math.IsNaN(*x.Value) || math.IsInf(*x.Value, 0)) { // the field's name only on an error
			return finite(x.Value, "reading "+x.Sensor+" value")
		}
		return nil
	case *Reading:
		return checkFinite(*x)
	case Alarm:
		errs := []error{finite(x.Value, "alarm value"), finite(x.Limit, "alarm limit")}
		if e := x.Episode; e != nil {
			errs = append(errs, finite(e.Max, "episode max"), finite(e.Min, "episode min"), finite(e.Mean, "episode mean"))
		}
		return errors.Join(errs...)
	case *Alarm:
		return checkFinite(*x)
	case Current:
		for _, r := range x.Readings {
			if err := checkFinite(r); err != nil {
				return err
			}
		}
	case *Current:
		return checkFinite(*x)
	case ActiveAlarms:
		for _, a := range x.Alarms {
			if err := checkFinite(a); err != nil {
				return err
			}
		}
	}
	return nil
}
