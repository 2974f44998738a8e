package config

import (
	"strings"
	"testing"
	"time"
)

// mqtt.current_deadband defaults to 1 and mqtt.current_interval to 10 s;
// a deadband of 0 stays 0 (any change); a negative deadband and an
// interval outside 1s..10m are refused with the file, line and key.
func TestParse_CurrentPacing(t *testing.T) {
	with := func(extra string) string {
		return strings.Replace(validYAML, `brokers: ["tcp://127.0.0.1:1883"]`, `brokers: ["tcp://127.0.0.1:1883"]`+"\n"+extra, 1)
	}
	l, err := Parse("hazmon.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if d := l.Config.MQTT.CurrentDeadband; d == nil || *d != 1 {
		t.Errorf("default current_deadband %v, want 1", d)
	}
	if got := l.Config.MQTT.CurrentInterval.D(); got != 10*time.Second {
		t.Errorf("default current_interval %v, want 10s", got)
	}
	l, err = Parse("hazmon.yaml", []byte(with("  current_deadband: 0\n  current_interval: 1m")))
	if err != nil {
		t.Fatal(err)
	}
	if d := l.Config.MQTT.CurrentDeadband; d == nil || *d != 0 {
		t.Errorf("current_deadband: 0 read as %v, want 0 (any change)", d)
	}
	if got := l.Config.MQTT.CurrentInterval.D(); got != time.Minute {
		t.Errorf("current_interval %v, want 1m", got)
	}
	for _, c := range []struct{ extra, want string }{
		{"  current_deadband: -0.5", `hazmon.yaml:4: mqtt.current_deadband: -0.5: want a number ≥ 0`},
		{"  current_interval: 500ms", `hazmon.yaml:4: mqtt.current_interval: 500ms is outside 1s..10m0s`},
		{"  current_interval: 11m", `hazmon.yaml:4: mqtt.current_interval: 11m0s is outside 1s..10m0s`},
		{"  current_deadband: lots", `hazmon.yaml:4: mqtt.current_deadband`},
	} {
		_, err := Parse("hazmon.yaml", []byte(with(c.extra)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.extra, err, c.want)
		}
	}
}

// agent.memory_limit defaults to 32 MiB, accepts bytes, KiB/MiB/GiB sizes,
// off and 0 (both off), and refuses a limit below 8 MiB and what is not a
// size, with the file, line and key.
func TestParse_MemoryLimit(t *testing.T) {
	with := func(v string) string {
		return strings.Replace(validYAML, "data_dir: /tmp/hazmon}", "data_dir: /tmp/hazmon, memory_limit: "+v+"}", 1)
	}
	l, err := Parse("hazmon.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if n, on := l.Config.Agent.MemoryLimit.Bytes(); !on || n != 32<<20 {
		t.Errorf("default memory_limit %d (on %v), want 32 MiB", n, on)
	}
	for v, want := range map[string]int64{"33554432": 32 << 20, "64MiB": 64 << 20, `"1GiB"`: 1 << 30, "9000KiB": 9000 << 10, "off": -1, "0": -1} {
		l, err := Parse("hazmon.yaml", []byte(with(v)))
		if err != nil {
			t.Errorf("memory_limit %s: %v", v, err)
			continue
		}
		if got := int64(l.Config.Agent.MemoryLimit); got != want {
			t.Errorf("memory_limit %s read as %d, want %d", v, got, want)
		}
		if want < 0 {
			if _, on := l.Config.Agent.MemoryLimit.Bytes(); on {
				t.Errorf("memory_limit %s is on, want off", v)
			}
		}
	}
	for v, want := range map[string]string{
		"4MiB": "hazmon.yaml:1: agent.memory_limit: 4MiB is below 8MiB",
		"32MB": `hazmon.yaml:1: agent.memory_limit: "32MB" is not a size`,
		"-5":   `hazmon.yaml:1: agent.memory_limit: "-5" is not a size`,
	} {
		_, err := Parse("hazmon.yaml", []byte(with(v)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("memory_limit %s: error %v, want %q", v, err, want)
		}
	}
}

// A Size is written back as the file may write it, and reads back the same.
func TestSize_RoundTrip(t *testing.T) {
	for _, s := range []Size{SizeOff, 32 << 20, 1 << 30, 9000 << 10, 12345} {
		back, err := ParseSize(s.String())
		if err != nil || back != s {
			t.Errorf("%d → %q → %d, %v", s, s.String(), back, err)
		}
	}
}
