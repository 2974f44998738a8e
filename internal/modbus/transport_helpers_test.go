package modbus

import (
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
)

// rtuBus is an RTU bus on dev at baud with timeout.
func rtuBus(dev string, baud int, timeout time.Duration) config.Bus {
	return config.Bus{Name: "t", Protocol: "rtu", Device: dev, Baud: baud, Parity: "E", Timeout: config.Duration(timeout)}
}

// openRTU opens a Client on bus, closed at cleanup. line forces the
// timing of a real line on a pty (the reply window opens after the
// request's wire time and t3.5), as on a real RS-485 adapter; the slave
// must then pace its replies at the bus's baud.
func openRTU(t testing.TB, bus config.Bus, line bool) *Client {
	t.Helper()
	port, err := OpenSerial(bus)
	if err != nil {
		t.Fatal(err)
	}
	if line {
		port.line = true
	}
	c := newRTUClient(bus, port)
	t.Cleanup(func() { c.Close() })
	return c
}

// valueAt is the distinct value the test banks hold at holding register
// addr of unit id, so that a reply given to the wrong request shows.
func valueAt(id byte, addr uint16) uint16 { return uint16(id)*1000 + addr }

// distinctBank returns a bank with units 1..units holding valueAt at
// addresses 0..addrs-1.
func distinctBank(units byte, addrs uint16) *mbslave.Bank {
	b := mbslave.NewBank()
	for id := byte(1); id <= units; id++ {
		for a := range addrs {
			b.SetHolding(id, a, valueAt(id, a))
		}
	}
	return b
}

func word(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}
