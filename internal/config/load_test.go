package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validYAML = `agent: {id: gw-01, site: site-0001, data_dir: /tmp/hazmon}
mqtt:
  brokers: ["tcp://127.0.0.1:1883"]
buses:
  - {name: plc-1, protocol: tcp, address: "127.0.0.1:502", timeout: 1s}
  - {name: rs485-1, protocol: rtu, device: /dev/ttyUSB0, baud: 9600, data_bits: 8, parity: E, stop_bits: 1, timeout: 500ms}
sensors:
  - id: CH4-101
    type: methane
    bus: plc-1
    slave: 1
    table: holding
    address: 0
    format: uint16
    scale: 0.01
    unit: "%CH4"
    interval: 1s
    range: [0, 4]
    location: main_return
  - id: LVL-1
    type: water_level
    bus: rs485-1
    slave: 2
    table: input
    address: 10
    format: float32
    byte_order: CDAB
    unit: m
    range: [0, 20]
  - id: FAN-1
    type: digital
    bus: plc-1
    slave: 1
    table: discrete
    address: 0
`

func TestParse_Valid(t *testing.T) {
	l, err := Parse("hazmon.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	if got := c.MQTT.TopicPrefix; got != "hazmon/v1" {
		t.Errorf("topic_prefix default = %q", got)
	}
	if got := c.MQTT.ClientID; got != "hazmon-site-0001-gw-01" {
		t.Errorf("client_id default = %q", got)
	}
	if got := c.Sensors[1].Interval.D().String(); got != "1s" {
		t.Errorf("interval default = %s", got)
	}
	if got := c.Sensors[2].Format; got != "bool" {
		t.Errorf("discrete format default = %q", got)
	}
	if got := c.Sensors[0].ScaleOr1(); got != 0.01 {
		t.Errorf("scale = %g", got)
	}
	if got := c.Bus("rs485-1").Timeout.D().String(); got != "500ms" {
		t.Errorf("rtu timeout = %s", got)
	}
	if len(l.Warnings) != 0 {
		t.Errorf("unexpected warnings: %v", l.Warnings)
	}
}

func TestParse_Errors(t *testing.T) {
	cases := []struct {
		name string
		edit func(string) string
		want []string // every one must appear, in "file:line: path: message" form
	}{
		{"unknown key", func(s string) string {
			return strings.Replace(s, "  brokers:", "  colour: red\n  brokers:", 1)
		}, []string{`hazmon.yaml:3: mqtt.colour: unknown key "colour"`}},
		{"wrong type", func(s string) string {
			return strings.Replace(s, "    slave: 1\n", "    slave: abc\n", 1)
		}, []string{"hazmon.yaml:11: sensors[0].slave: wrong type"}},
		{"bad duration", func(s string) string {
			return strings.Replace(s, "interval: 1s", "interval: fast", 1)
		}, []string{`hazmon.yaml:17: sensors[0].interval: "fast" is not a duration`}},
		{"missing required", func(s string) string {
			return strings.Replace(s, "    table: holding\n", "", 1)
		}, []string{"hazmon.yaml:8: sensors[0].table: required"}},
		{"several at once", func(s string) string {
			s = strings.Replace(s, "    slave: 2\n", "    slave: 300\n", 1)
			s = strings.Replace(s, "bus: plc-1\n    slave: 1\n    table: discrete", "bus: plc-9\n    slave: 1\n    table: discrete", 1)
			return strings.Replace(s, "format: float32", "format: float64", 1)
		}, []string{
			"sensors[1].slave: 300 is outside 1..247",
			`sensors[1].format: "float64"`,
			`sensors[2].bus: "plc-9" is not a bus`,
		}},
		{"duplicate id", func(s string) string {
			return strings.Replace(s, "id: LVL-1", "id: CH4-101", 1)
		}, []string{`sensors[1].id: "CH4-101" is already used by sensors[0]`}},
		{"coil with a number format", func(s string) string {
			return strings.Replace(s, "    table: discrete\n", "    table: discrete\n    format: uint16\n", 1)
		}, []string{`sensors[2].format: "uint16": a discrete holds one bit`}},
		{"float past the last register", func(s string) string {
			return strings.Replace(s, "address: 10", "address: 65535", 1)
		}, []string{"sensors[1].address: 65535 is outside 0..65534"}},
		{"tcp slave id range", func(s string) string {
			return strings.Replace(s, "    slave: 1\n    table: holding", "    slave: 256\n    table: holding", 1)
		}, []string{"sensors[0].slave: 256 is outside 0..255"}},
		{"syntax error", func(s string) string {
			return strings.Replace(s, "brokers: [", "brokers: [[", 1)
		}, []string{"hazmon.yaml:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("hazmon.yaml", []byte(tc.edit(validYAML)))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *config.Error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if len(ce.Problems) < len(tc.want) {
				t.Errorf("want at least %d problems, got %d", len(tc.want), len(ce.Problems))
			}
		})
	}
}

func TestParse_Warnings(t *testing.T) {
	s := strings.Replace(validYAML, "    range: [0, 4]\n", "", 1)
	l, err := Parse("hazmon.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Warnings) != 1 || l.Warnings[0].Path != "sensors[0].range" || l.Warnings[0].Line != 8 {
		t.Fatalf("warnings = %v", l.Warnings)
	}
}

func TestLoad_File(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "pw")
	s := strings.Replace(validYAML, "  brokers:", "  username: gw\n  password_file: "+p+"\n  brokers:", 1)
	if _, err := Parse("x.yaml", []byte(s)); err == nil || !strings.Contains(err.Error(), "mqtt.password_file: cannot read") {
		t.Fatalf("missing password file: %v", err)
	}
	if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("x.yaml", []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse: the loader never panics, and a config it accepts passes its
// own invariants (known tables, formats and buses).
func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML))
	f.Add([]byte("agent: {id: a}\n"))
	f.Add([]byte("sensors: [{id: x, interval: 1h}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, s := range l.Config.Sensors {
			if l.Config.Bus(s.Bus) == nil {
				t.Fatalf("accepted sensor %q on unknown bus %q", s.ID, s.Bus)
			}
			if s.Interval.D() < MinInterval {
				t.Fatalf("accepted interval %s", s.Interval)
			}
		}
	})
}

// TestParse_FlowMappingPaths: in a flow mapping several keys share a line;
// the error names the key whose value is wrong, not a neighbour.
func TestParse_FlowMappingPaths(t *testing.T) {
	y := `agent: {id: gw-01, site: s}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
buses: [{name: b, protocol: tcp, address: "127.0.0.1:502"}]
sensors:
  - {id: X, type: methane, bus: b, slave: 1,
     table: holding, address: 0, interval: soon, slave_id: 3, range: [0, 4], unit: "%CH4", address2: 1}
  - {id: Y, type: co, bus: b, slave: nine, table: holding, address: 1, unit: ppm, range: [0, 100]}
`
	_, err := Parse("f.yaml", []byte(y))
	for _, w := range []string{
		`f.yaml:6: sensors[0].interval: "soon" is not a duration`,
		`f.yaml:6: sensors[0].slave_id: unknown key "slave_id"`,
		`f.yaml:6: sensors[0].address2: unknown key "address2"`,
		"f.yaml:7: sensors[1].slave: wrong type: cannot use !!str `nine`",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

// PeekSocket finds control.socket in a file that does not load (a typo,
// a key given twice), "" when it has no control section, and fails on a
// control section without a readable socket and on a file that is not
// YAML.
func TestPeekSocket_ReadsOnlyTheSocketOfABrokenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	for _, c := range []struct {
		y, want string
		fails   bool
	}{
		{validYAML + "control: {socket: /run/a.sock, colour: red}\nagent: {id: twice}\n", "/run/a.sock", false},
		{validYAML, "", false},
		{validYAML + "control: {sokcet: /run/b.sock}\n", "", true},
		{validYAML + "control: {socket: [a]}\n", "", true},
		{"control: [\n", "", true},
	} {
		if err := os.WriteFile(p, []byte(c.y), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := PeekSocket(p); (err != nil) != c.fails || got != c.want {
			t.Errorf("%q: PeekSocket = %q, %v; want %q (fails %v)", c.y[max(0, len(c.y)-40):], got, err, c.want, c.fails)
		}
	}
}
