package config

import (
	"errors"
	"strings"
	"testing"
)

// caseSensorYAML is a minimal config around one Modbus sensor line (the
// field cases D1 and D3 of the project's case catalogue).
func caseSensorYAML(sensor string) string {
	return `agent: {id: gw-01, site: site-0001, data_dir: /tmp/hazmon}
mqtt:
  brokers: ["tcp://127.0.0.1:1883"]
buses:
  - {name: rs485-1, protocol: rtu, device: /dev/ttyUSB0, baud: 9600, parity: E, timeout: 500ms}
sensors:
  - ` + sensor + "\n"
}

// D1, second half: a float32 (word-swapped CDAB [9BD4, 436E] = 238.6087 m
// in the case) is already in engineering units; a scale other than 1 on it
// (here 10, which would make 2386.087, outside the sensor's range [0, 1000])
// is accepted but warned about, on the scale key. Scale 1 gives no warning.
func TestCases_D1FloatScaleWarns(t *testing.T) {
	for _, c := range []struct {
		name, scale string
		warn        bool
	}{
		{"scale 10", "scale: 10, ", true},
		{"scale 0.1", "scale: 0.1, ", true},
		{"scale 1", "scale: 1, ", false},
		{"no scale", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			y := caseSensorYAML(`{id: LVL-1, type: water_level, bus: rs485-1, slave: 2, table: holding, address: 0, format: float32, byte_order: CDAB, ` +
				c.scale + `unit: m, range: [0, 1000]}`)
			l, err := Parse("hazmon.yaml", []byte(y))
			if err != nil {
				t.Fatalf("a scaled float is a warning, not an error: %v", err)
			}
			var got []string
			for _, w := range l.Warnings {
				got = append(got, w.Path+": "+w.Message)
			}
			has := false
			for _, w := range l.Warnings {
				if w.Path == "sensors[0].scale" && strings.Contains(w.Message, "float32") && w.Line == 7 {
					has = true
				}
			}
			if has != c.warn {
				t.Fatalf("warnings %q: scale warning present = %v, want %v", got, has, c.warn)
			}
			if !c.warn && len(l.Warnings) != 0 {
				t.Fatalf("unexpected warnings %q", got)
			}
		})
	}
}

// D3: a float spans two registers. A float32 (or a 32-bit integer) cannot
// be configured over one register: the register count follows from the
// format, so the only ways to get it wrong are a format that does not
// exist (float64 over an odd count has no format to name) or a float whose
// second register would be past the last address (65535). Both are errors.
func TestCases_D3FloatOverOneRegister(t *testing.T) {
	for _, c := range []struct {
		name, sensor, want string
	}{
		{"float32 at the last register", `{id: P-1, type: pressure, bus: rs485-1, slave: 1, table: holding, address: 65535, format: float32, unit: kPa, range: [0, 500]}`,
			"sensors[0].address: 65535 is outside 0..65534"},
		{"uint32 at the last input register", `{id: P-2, type: pressure, bus: rs485-1, slave: 1, table: input, address: 65535, format: uint32, unit: kPa, range: [0, 500]}`,
			"sensors[0].address: 65535 is outside 0..65534"},
		{"float64", `{id: P-3, type: pressure, bus: rs485-1, slave: 1, table: holding, address: 0, format: float64, unit: kPa, range: [0, 500]}`,
			`sensors[0].format: "float64"`},
		{"float on a coil", `{id: P-4, type: pressure, bus: rs485-1, slave: 1, table: coil, address: 0, format: float32, unit: kPa}`,
			`sensors[0].format: "float32": a coil holds one bit`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("hazmon.yaml", []byte(caseSensorYAML(c.sensor)))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a config error", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error lacks %q:\n%v", c.want, err)
			}
		})
	}
	// The same float32 one register lower (address 65534, registers 65534
	// and 65535) is valid.
	if _, err := Parse("hazmon.yaml", []byte(caseSensorYAML(`{id: P-1, type: pressure, bus: rs485-1, slave: 1, table: holding, address: 65534, format: float32, unit: kPa, range: [0, 500]}`))); err != nil {
		t.Fatalf("float32 at 65534: %v", err)
	}
}
