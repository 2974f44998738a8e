package metrics

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/metrics/metricstest"
	"github.com/hazmon/hazmon/internal/modbus"
)

// fullSnapshot has every part filled in, as a running agent's would be.
func fullSnapshot() *Snapshot {
	var rtt modbus.RTTHistogram
	rtt.Counts[0], rtt.Counts[3], rtt.Counts[len(rtt.Counts)-1] = 5, 2, 1
	rtt.Sum = 6 * time.Second
	return &Snapshot{
		Version: "v1.2.3", Commit: "abc123", State: "running",
		Sensors: []SensorCounts{
			{Sensor: "CH4-101", Readings: 42, Faults: []CodeCount{{Code: "exception_2", N: 1}, {Code: "timeout", N: 3}}},
			{Sensor: `odd"id\x`, Readings: 0},
		},
		Buses: []Bus{{Name: "plc-1", BusStats: modbus.BusStats{Connected: true, Requests: 8, Errors: 2, Timeouts: 1,
			Busy: 1, Missed: 4, MissedPolls: 1, Retries: 1, Load: 0.25, RTT: rtt}}},
		Sources:     []Source{{Name: "bus plc-1", Overruns: 7}, {Name: "bus supervisor"}},
		CoreLoopAge: 50 * time.Millisecond, OutboxLostReadings: 3,
		Core: &Core{
			Outputs: []Output{
				{Name: "breaker-1", Cut: true, Confirmed: true, Known: true, Energised: false, Cuts: 2, CutSeconds: 12.5},
				{Name: "relay-2", Known: false},
			},
			AlarmLevels: []string{"cutoff", "alarm", "alarm", "something_new"},
		},
		Buffer: &Buffer{Bytes: 1000, FileBytes: 32768, LimitBytes: 256 << 20, Streams: []Stream{
			{Name: "alarm", Acked: 4, LastSeq: 4},
			{Name: "telemetry", Pending: 10, Outbox: 2, OldestAge: 90 * time.Second, LastSeq: 17, Evicted: 5, Acked: 15},
		}},
		MQTT:       &MQTT{Connected: true, Since: time.UnixMilli(1_700_000_000_500), InFlight: 2},
		NotStored:  1,
		LogDropped: 9,
	}
}

func render(t *testing.T, s *Snapshot) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The exposition of a full snapshot passes promtool (format and lint:
// help texts, _total counters, base units) and carries each value with
// its labels, a label value escaped as the format requires.
func TestWrite_FullSnapshotPassesPromtool(t *testing.T) {
	out := render(t, fullSnapshot())
	metricstest.Check(t, []byte(out))
	for _, line := range []string{
		`hazmon_build_info{commit="abc123",go_version="` + goVersion() + `",version="v1.2.3"} 1`,
		`hazmon_agent_state{state="running"} 1`,
		`hazmon_agent_state{state="stopping"} 0`,
		`hazmon_core_up 1`,
		`hazmon_core_loop_age_seconds 0.05`,
		`hazmon_core_outbox_lost_total{kind="reading"} 3`,
		`hazmon_source_overruns_total{source="bus plc-1"} 7`,
		`hazmon_readings_total{sensor="CH4-101"} 42`,
		`hazmon_readings_total{sensor="odd\"id\\x"} 0`,
		`hazmon_reading_faults_total{code="timeout",sensor="CH4-101"} 3`,
		`hazmon_reading_faults_total{code="exception_2",sensor="CH4-101"} 1`,
		`hazmon_bus_requests_total{bus="plc-1"} 8`,
		`hazmon_bus_skipped_ticks_total{bus="plc-1"} 4`,
		`hazmon_bus_missed_polls_total{bus="plc-1"} 1`,
		`hazmon_bus_rtt_seconds_bucket{bus="plc-1",le="0.001"} 5`,
		`hazmon_bus_rtt_seconds_bucket{bus="plc-1",le="0.01"} 7`,
		`hazmon_bus_rtt_seconds_bucket{bus="plc-1",le="5"} 7`,
		`hazmon_bus_rtt_seconds_bucket{bus="plc-1",le="+Inf"} 8`,
		`hazmon_bus_rtt_seconds_sum{bus="plc-1"} 6`,
		`hazmon_bus_rtt_seconds_count{bus="plc-1"} 8`,
		`hazmon_output_cut{output="breaker-1"} 1`,
		`hazmon_output_energised{output="breaker-1"} 0`,
		`hazmon_output_cuts_total{output="breaker-1"} 2`,
		`hazmon_output_cut_seconds_total{output="breaker-1"} 12.5`,
		`hazmon_alarms_active{level="alarm"} 2`,
		`hazmon_alarms_active{level="cutoff"} 1`,
		`hazmon_alarms_active{level="red"} 0`,
		`hazmon_alarms_active{level="something_new"} 1`,
		`hazmon_buffer_usable 1`,
		`hazmon_buffer_pending_records{stream="telemetry"} 10`,
		`hazmon_buffer_oldest_age_seconds{stream="telemetry"} 90`,
		`hazmon_buffer_evicted_records_total{stream="telemetry"} 5`,
		`hazmon_buffer_limit_bytes 2.68435456e+08`,
		`hazmon_mqtt_acked_messages_total{stream="telemetry"} 15`,
		`hazmon_mqtt_link_change_timestamp_seconds 1.7000000005e+09`,
		`hazmon_log_dropped_lines_total 9`,
	} {
		if !strings.Contains(out, "\n"+line+"\n") {
			t.Errorf("missing line %s", line)
		}
	}
	if strings.Contains(out, `hazmon_output_energised{output="relay-2"}`) {
		t.Error("an output whose state is unknown has an energised series")
	}
	for _, fam := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(out, "\n"+fam+" ") && !strings.Contains(out, "# TYPE "+fam+" ") {
			t.Errorf("runtime family %s missing", fam)
		}
	}
}

// Without a buffer, a publisher or an answer from the safety core the
// exposition says so (usable 0, core_up 0) and leaves their series out,
// and is still valid.
func TestWrite_MissingPartsAreLeftOut(t *testing.T) {
	s := fullSnapshot()
	s.Buffer, s.MQTT, s.Core = nil, nil, nil
	out := render(t, s)
	metricstest.Check(t, []byte(out))
	for _, want := range []string{"\nhazmon_buffer_usable 0\n", "\nhazmon_core_up 0\n", "\nhazmon_buffer_not_stored_records_total 1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", strings.TrimSpace(want))
		}
	}
	for _, gone := range []string{"hazmon_buffer_pending_records", "hazmon_mqtt_", "hazmon_output_", "hazmon_alarms_active"} {
		if strings.Contains(out, "\n"+gone) {
			t.Errorf("%s present without its source", gone)
		}
	}
}

// A duplicate series (a defect) is an error, not a half-written scrape.
func TestWrite_DuplicateSeriesIsAnError(t *testing.T) {
	s := fullSnapshot()
	s.Buses = append(s.Buses, s.Buses[0])
	var b bytes.Buffer
	if err := Write(&b, s); err == nil || b.Len() != 0 {
		t.Fatalf("err %v, %d bytes written", err, b.Len())
	}
}

// README "Metrics" lists every family with its type and labels.
func TestFamilies_AllInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(readme), "\n## Metrics\n")
	if !ok {
		t.Fatal("README has no Metrics section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	for _, f := range Families() {
		labels := strings.Join(f.Labels, ", ")
		if labels == "" {
			labels = "—"
		}
		row := regexp.MustCompile("(?m)^\\| `" + f.Name + "` \\| " + f.Type + " \\| " + regexp.QuoteMeta(labels) + " \\| ")
		if !row.MatchString(sec) {
			t.Errorf("README Metrics has no row | `%s` | %s | %s | ...", f.Name, f.Type, labels)
		}
	}
}
