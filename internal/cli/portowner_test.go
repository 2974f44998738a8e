package cli

import (
	"context"
	"fmt"
	"testing"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/modbus"
)

// A serial port the running agent owns: scan refuses at once, naming the
// bus and how to read through the agent; probe --rtu reads through the
// agent's bus instead of fighting it for the port.
func TestScanAndProbe_PortOwnedByAgent(t *testing.T) {
	dev := mbslavetest.StartRTU(t, testBank(), 0)
	ag := startAgentWith(t, "tcp://127.0.0.1:1",
		fmt.Sprintf("  - {name: R, protocol: rtu, device: %s, baud: 9600, parity: N, timeout: 500ms}\n", dev),
		"  - {id: T-1, type: temperature, bus: R, slave: 1, table: holding, address: 0, format: uint16, unit: C, interval: 500ms}\n")
	c := control.NewClient(ag.socket)
	waitFor(t, "bus R up", func() bool {
		st, err := c.Status(context.Background())
		if err != nil {
			return false
		}
		for _, b := range st.Buses {
			if b.Name == "R" && b.Connected {
				return true
			}
		}
		return false
	})

	code, out, errs := hz(t, "", "scan", "--socket", ag.socket, "--rtu", dev, "--parity", "N", "--to", "3")
	if code != 1 {
		t.Errorf("scan of the agent's port: exit %d, want 1\n%s", code, out)
	}
	mustContain(t, "scan refusal", errs, "serial port "+dev+" is owned by the running agent (bus R)",
		"hazmon probe --bus R --slave N", "systemctl stop hazmon")

	code, out, errs = hz(t, "", "probe", "--socket", ag.socket, "--rtu", dev, "--parity", "N", "--slave", "1", "--address", "0", "--count", "1")
	if code != 0 {
		t.Fatalf("probe of the agent's port: exit %d: %s", code, errs)
	}
	mustContain(t, "probe through the agent", normRows(out), "R, slave 1, holding 0..0, via agent", row("0", "0x0034", "uint16", "52"))
	mustContain(t, "probe note", errs, dev+" is owned by the running agent: reading through its bus R")
}

// A serial port held by another process that is not the agent (or with
// no agent answering): scan and probe refuse with the cause and what to do.
func TestScanAndProbe_PortInUseElsewhere(t *testing.T) {
	dev := mbslavetest.StartRTU(t, testBank(), 0)
	holder, err := modbus.Dial(config.Bus{Name: "other", Protocol: "rtu", Device: dev})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	sock := t.TempDir() + "/none.sock"
	code, _, errs := hz(t, "", "scan", "--socket", sock, "--rtu", dev, "--to", "3")
	if code != 1 {
		t.Errorf("scan: exit %d, want 1", code)
	}
	mustContain(t, "scan refusal", errs, "serial port "+dev+" is in use by another process (the running agent?)", "stop it first")
	code, _, errs = hz(t, "", "probe", "--socket", sock, "--rtu", dev, "--count", "1")
	if code != 1 {
		t.Errorf("probe: exit %d, want 1", code)
	}
	mustContain(t, "probe refusal", errs, "serial port "+dev+" is in use by another process (the running agent?)", "hazmon probe --bus NAME")
}
