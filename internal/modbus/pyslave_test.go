package modbus

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/reading"
)

// startPySlave runs testdata/pyslave.py (pymodbus, an implementation
// independent of ours and of mbslave) until the test ends.
func startPySlave(t *testing.T, args ...string) {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import pymodbus.server, serial_asyncio").Run(); err != nil {
		t.Skipf("%s cannot import pymodbus (apt-get install python3-pymodbus python3-serial-asyncio): %v", py, err)
	}
	cmd := exec.Command(py, append([]string{"testdata/pyslave.py"}, args...)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("pyslave output:\n%s", out.String())
		}
	})
}

// The values pyslave.py serves, read through the poller.
func pySensors(bus string) ([]config.Sensor, map[string]float64) {
	mk := func(id, table string, addr int, format string) config.Sensor {
		return config.Sensor{ID: id, Bus: bus, Slave: 1, Table: table, Address: addr, Format: format, Interval: ms(300)}
	}
	return []config.Sensor{
			mk("HR0", TableHolding, 0, "uint16"), mk("HR1", TableHolding, 1, "float32"),
			mk("IR5", TableInput, 5, "uint16"), mk("CO3", TableCoil, 3, "bool"),
			mk("CO2", TableCoil, 2, "bool"), mk("DI4", TableDiscrete, 4, "bool"),
		}, map[string]float64{
			"HR0": 1234, "HR1": 21.5, "IR5": 500, "CO3": 1, "CO2": 0, "DI4": 1,
		}
}

func checkPy(t *testing.T, s *sink, want map[string]float64) {
	for id, v := range want {
		// The slave may still be starting: wait for the first valid reading.
		rs := s.waitFor(t, id, 20*time.Second, "valid reading", func(rs []reading.Reading) bool {
			for _, r := range rs {
				if r.Valid() {
					return true
				}
			}
			return false
		})
		for _, r := range rs {
			if r.Valid() && r.Value != v {
				t.Errorf("%s = %v, want %v", id, r.Value, v)
			}
		}
	}
}

func TestPoller_PymodbusSlave(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		startPySlave(t, "tcp", strconv.Itoa(port))
		sensors, want := pySensors("py")
		_, s := startPoller(t, config.Bus{Name: "py", Protocol: "tcp", Address: ln.Addr().String(), Timeout: ms(1000)}, sensors)
		checkPy(t, s, want)
	})
	t.Run("rtu", func(t *testing.T) {
		slaveEnd, clientEnd := mbslavetest.PtyPair(t)
		startPySlave(t, "rtu", slaveEnd)
		sensors, want := pySensors("py485")
		_, s := startPoller(t, config.Bus{Name: "py485", Protocol: "rtu", Device: clientEnd, Baud: 9600, Parity: "E", Timeout: ms(1000)}, sensors)
		checkPy(t, s, want)
	})
}
