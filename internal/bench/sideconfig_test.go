package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
)

// fleet is the set of sensors of a side-by-side run: n temperature
// sensors of slave 1 on holding registers base, base+stride, ..., each
// polled every interval. Both agents are given the same registers.
type fleet struct {
	n        int
	base     int
	stride   int           // 1: adjacent (coalesced into reads of ≤ 125 registers)
	interval time.Duration // poll interval of every sensor
	maxGap   string        // hazmon buses[].max_gap; "" = the default
	// telemetry is hazmon's mqtt.telemetry (v1, v2, both); "" = the
	// default (v1).
	telemetry string
}

func (f fleet) addr(i int) int { return f.base + i*f.stride }

// offered is the readings per second the fleet's schedule asks for.
func (f fleet) offered() float64 { return float64(f.n) / f.interval.Seconds() }

// load fills bank with a distinct value per sensor register (20.0 °C + i/10).
func (f fleet) load(bank *mbslave.Bank) {
	bank.AddUnit(1)
	bank.SetSize(1, 1<<16)
	for i := range f.n {
		bank.SetHolding(1, uint16(f.addr(i)), uint16(200+i%1000))
	}
}

// hazmonConfig is the hazmon.yaml a user would write for the fleet: one
// Modbus TCP bus, the sensors as uint16 × 0.1 °C, the buffer in dir.
func (f fleet) hazmonConfig(dir, slave, broker string) string {
	var b strings.Builder
	gap := ""
	if f.maxGap != "" {
		gap = ", max_gap: " + f.maxGap
	}
	tele := ""
	if f.telemetry != "" {
		tele = ", telemetry: " + f.telemetry
	}
	fmt.Fprintf(&b, `agent: {id: gw-bench, site: bench, data_dir: %q}
mqtt: {brokers: [%q], keepalive: 10s%s}
control: {socket: %q}
log: {level: warn, format: text}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 1s%s}
sensors:
`, dir+"/data", broker, tele, dir+"/hazmon.sock", slave, gap)
	for i := range f.n {
		fmt.Fprintf(&b, "  - {id: T%04d, type: temperature, bus: plc, slave: 1, table: holding, address: %d, format: uint16, scale: 0.1, unit: C, interval: %s}\n",
			i, f.addr(i), f.interval)
	}
	return b.String()
}

// telegrafFields is the same fleet as Telegraf modbus fields.
func (f fleet) telegrafFields() []telegrafField {
	fs := make([]telegrafField, f.n)
	for i := range f.n {
		fs[i] = telegrafField{name: fmt.Sprintf("T%04d", i), addr: f.addr(i), scale: 0.1}
	}
	return fs
}
