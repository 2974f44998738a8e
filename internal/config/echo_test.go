package config

import (
	"strings"
	"testing"
	"time"
)

// buses[].echo and buses[].turnaround: RTU only, echo defaults to auto,
// bad values are refused with the key's path.
func TestParse_EchoAndTurnaround(t *testing.T) {
	rtu := "{name: rs485-1, protocol: rtu, device: /dev/ttyUSB0, baud: 9600, data_bits: 8, parity: E, stop_bits: 1, timeout: 500ms}"
	with := func(extra string) string {
		return strings.Replace(validYAML, rtu, strings.Replace(rtu, "}", ", "+extra+"}", 1), 1)
	}
	l, err := Parse("hazmon.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if b := l.Config.Bus("rs485-1"); b.Echo != "auto" || b.Turnaround != 0 {
		t.Errorf("defaults: echo %q turnaround %v, want auto and 0 (the built-in default)", b.Echo, b.Turnaround)
	}
	if b := l.Config.Bus("plc-1"); b.Echo != "" {
		t.Errorf("tcp bus echo %q, want none", b.Echo)
	}
	l, err = Parse("hazmon.yaml", []byte(with("echo: on, turnaround: 250ms")))
	if err != nil {
		t.Fatal(err)
	}
	if b := l.Config.Bus("rs485-1"); b.Echo != "on" || b.Turnaround.D() != 250*time.Millisecond {
		t.Errorf("echo %q turnaround %v, want on and 250ms", b.Echo, b.Turnaround)
	}
	for _, c := range []struct{ yaml, want string }{
		{with("echo: maybe"), `buses[1].echo: "maybe": use auto, on or off`},
		{with("turnaround: 5s"), "buses[1].turnaround: 5s is outside 1ms..2s"},
		{strings.Replace(validYAML, `timeout: 1s}`, `timeout: 1s, echo: off}`, 1), "buses[0].echo: only for protocol rtu"},
		{strings.Replace(validYAML, `timeout: 1s}`, `timeout: 1s, turnaround: 50ms}`, 1), "buses[0].turnaround: only for protocol rtu"},
	} {
		_, err := Parse("hazmon.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}
