package metrics

import "github.com/prometheus/client_golang/prometheus"

// Family is one metric family hazmon exposes (besides the go_ and
// process_ families of client_golang's runtime collectors).
type Family struct {
	Name   string   // hazmon_..., base units, _total for counters
	Type   string   // "counter", "gauge" or "histogram"
	Labels []string // label names, in order
	Help   string
}

// The families, in exposition order. Each is also listed in README
// "Metrics" (checked by TestFamilies_AllInREADME).
var (
	famBuildInfo     = fam("hazmon_build_info", "gauge", "Always 1; the labels say which build runs.", "version", "commit", "go_version")
	famAgentState    = fam("hazmon_agent_state", "gauge", "1 for the agent's current state (starting, running, stopping), 0 for the others.", "state")
	famCoreUp        = fam("hazmon_core_up", "gauge", "1 if the safety core answered this scrape within 1 s; 0 leaves out the output and alarm metrics.")
	famCoreLoopAge   = fam("hazmon_core_loop_age_seconds", "gauge", "Seconds since the safety core's loop last ran (it runs at least every 500 ms; every 100 ms while a calibration runs or a timer is within 0.6 s of running out).")
	famOutboxLost    = fam("hazmon_core_outbox_lost_total", "counter", "Items the safety core's outbox dropped because the recorder did not keep up: kind reading, or urgent (alarms and events).", "kind")
	famOverruns      = fam("hazmon_source_overruns_total", "counter", "Readings a source's queue into the safety core refused because it was full (source \"bus NAME\", \"gpio SENSOR\" or \"bus supervisor\").", "source")
	famReadings      = fam("hazmon_readings_total", "counter", "Readings of the sensor evaluated by the safety core since the agent started, faults included.", "sensor")
	famFaults        = fam("hazmon_reading_faults_total", "counter", "Fault readings of the sensor since the agent started, by fault code.", "sensor", "code")
	famBusConnected  = fam("hazmon_bus_connected", "gauge", "1 while the bus's serial port or TCP connection is open.", "bus")
	famBusRequests   = fam("hazmon_bus_requests_total", "counter", "Modbus transactions sent on the bus, retries included.", "bus")
	famBusErrors     = fam("hazmon_bus_errors_total", "counter", "Transactions that returned no data: timeouts, exceptions, CRC, framing, I/O.", "bus")
	famBusTimeouts   = fam("hazmon_bus_timeouts_total", "counter", "Transactions without a reply within the bus timeout (counted in errors too).", "bus")
	famBusBusy       = fam("hazmon_bus_busy_total", "counter", "Exception 6 (slave device busy) replies (counted in errors too).", "bus")
	famBusRetries    = fam("hazmon_bus_retries_total", "counter", "Reads sent again at once after a missed reply (counted in requests too).", "bus")
	famBusMissed     = fam("hazmon_bus_missed_polls_total", "counter", "Polls whose reply was missed while their sensors were below fault_after: no reading, the last one stands.", "bus")
	famBusSkipped    = fam("hazmon_bus_skipped_ticks_total", "counter", "Poll ticks skipped because the bus was behind its schedule.", "bus")
	famBusLoad       = fam("hazmon_bus_load_ratio", "gauge", "Bus time the schedule asks for per second of wall time (1 = the bus is full).", "bus")
	famBusRTT        = fam("hazmon_bus_rtt_seconds", "histogram", "Round-trip time of every transaction, request to reply; a timed-out one counts with the time it waited.", "bus")
	famBufUsable     = fam("hazmon_buffer_usable", "gauge", "1 while the store-and-forward buffer is usable; 0 leaves out the other buffer and the mqtt metrics.")
	famBufPending    = fam("hazmon_buffer_pending_records", "gauge", "Records of the stream waiting to be put in a message.", "stream")
	famBufOutbox     = fam("hazmon_buffer_outbox_messages", "gauge", "Messages of the stream formed and waiting for the broker's PUBACK.", "stream")
	famBufOldest     = fam("hazmon_buffer_oldest_age_seconds", "gauge", "Age of the stream's oldest record waiting (its sample time to now); 0 when nothing waits.", "stream")
	famBufLastSeq    = fam("hazmon_buffer_last_seq", "gauge", "Seq of the last message formed for the stream (the seq the platform sees).", "stream")
	famBufEvicted    = fam("hazmon_buffer_evicted_records_total", "counter", "Records of the stream dropped by eviction (buffer full, max_age) since the buffer file was created; each is reported in a data_loss event.", "stream")
	famBufBytes      = fam("hazmon_buffer_bytes", "gauge", "Bytes the buffer accounts for its records (the buffer.max_bytes measure).")
	famBufFile       = fam("hazmon_buffer_file_bytes", "gauge", "Size of the buffer file on disk.")
	famBufLimit      = fam("hazmon_buffer_limit_bytes", "gauge", "The buffer's cap (buffer.max_bytes).")
	famBufNotStored  = fam("hazmon_buffer_not_stored_records_total", "counter", "Records the agent could not buffer since it started (queue full, write error, no buffer); each is reported in a data_loss event.")
	famMQTTConnected = fam("hazmon_mqtt_connected", "gauge", "1 while the broker link is up.")
	famMQTTSince     = fam("hazmon_mqtt_link_change_timestamp_seconds", "gauge", "Unix time the broker link last went up or down; 0 if it never did.")
	famMQTTInFlight  = fam("hazmon_mqtt_in_flight_messages", "gauge", "Messages published and waiting for a PUBACK.")
	famMQTTAcked     = fam("hazmon_mqtt_acked_messages_total", "counter", "Messages of the stream the broker acknowledged (PUBACK) since the agent started.", "stream")
	famOutCut        = fam("hazmon_output_cut", "gauge", "1 while the agent commands the output cut (power not allowed), 0 while it allows power.", "output")
	famOutEnergised  = fam("hazmon_output_energised", "gauge", "The output's physical state as last read back or written: 1 energised, 0 de-energised; absent while unknown.", "output")
	famOutConfirmed  = fam("hazmon_output_confirmed", "gauge", "1 when the output's lane confirmed the current command (GPIO written, coil read back).", "output")
	famOutLatched    = fam("hazmon_output_latched", "gauge", "1 while the output is latched cut after output_mismatch (hazmon output restore lifts it).", "output")
	famOutFeed       = fam("hazmon_output_feed_abnormal", "gauge", "1 while the output's feed sensor contradicts its command (feed_abnormal).", "output")
	famOutCuts       = fam("hazmon_output_cuts_total", "counter", "Times the output was cut since the agent started.", "output")
	famOutCutSeconds = fam("hazmon_output_cut_seconds_total", "counter", "Seconds the output was physically cut (read back) since the agent started.", "output")
	famAlarms        = fam("hazmon_alarms_active", "gauge", "Alarms active now, by level.", "level")
	famLogDropped    = fam("hazmon_log_dropped_lines_total", "counter", "Log lines dropped since the agent started because the log sink (stderr, journald) stalled.")
)

// families is every hazmon_ family, in the order fam was called.
var families []*family

type family struct {
	Family
	desc *prometheus.Desc
}

func fam(name, typ, help string, labels ...string) *family {
	f := &family{Family: Family{Name: name, Type: typ, Labels: labels, Help: help},
		desc: prometheus.NewDesc(name, help, labels, nil)}
	families = append(families, f)
	return f
}

// Families returns every hazmon_ metric family: for documentation and tests.
func Families() []Family {
	out := make([]Family, len(families))
	for i, f := range families {
		out[i] = f.Family
	}
	return out
}
