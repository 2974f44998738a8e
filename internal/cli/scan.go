package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/spf13/cobra"
)

// scanResult is one unit id that answered.
type scanResult struct {
	Slave int    `json:"slave"`
	Reply string `json:"reply"` // "data" or "exception N (name)"
}

func newScan(stdout, stderr io.Writer) *cobra.Command {
	var f busFlags
	var from, to, address int
	var table string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "Find which slave (unit) ids answer on a bus",
		Long: "Scan sends one read (by default holding register 0, count 1) to each unit id\n" +
			"from --from to --to and lists those that reply. Any reply counts, an\n" +
			"exception included (the slave is there but has no such register); on TCP,\n" +
			"gateway exceptions 10 and 11 mean the unit behind the gateway is absent.\n" +
			"A serial port the running agent owns is refused (stop the agent first:\n" +
			"systemctl stop hazmon). On RS-485 at 9600 baud or slower, 100ms may be\n" +
			"short for a slow slave: try 200ms.\n" +
			"On a terminal, progress shows on stderr.",
		Example: "  hazmon scan --rtu /dev/ttyUSB0 --baud 9600 --parity E\n" +
			"  hazmon scan --rtu /dev/ttyUSB0 --baud 9600 --parity N --to 32 --timeout 200ms\n" +
			"  hazmon scan --tcp 192.168.1.60:502 --to 16",
		Args: cobra.NoArgs,
	}
	t := addTarget(cmd)
	addBusFlags(cmd, &f, 100*time.Millisecond, false)
	cmd.Flags().Lookup("timeout").Usage = "reply timeout (9600 baud: try 200ms)"
	cmd.Flags().IntVar(&from, "from", 1, "first unit id")
	cmd.Flags().IntVar(&to, "to", 247, "last unit id")
	cmd.Flags().StringVar(&table, "table", "holding", "holding, input, coil or discrete")
	cmd.Flags().IntVar(&address, "address", 0, "0-based address read")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the unit ids that answered as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if from < 0 || to > 255 || from > to {
			return fmt.Errorf("--from %d --to %d: want 0 <= from <= to <= 255 (1..247 on RS-485)", from, to)
		}
		if err := control.CheckProbe(control.ProbeRequest{Slave: from, Table: table, Address: address, Count: 1}); err != nil {
			return err
		}
		bus, err := f.direct()
		if err != nil {
			return err
		}
		d, err := modbus.Dial(bus)
		if errors.Is(err, modbus.ErrPortInUse) {
			return scanRefused(cmd, t, bus.Device, err)
		}
		if err != nil {
			return fmt.Errorf("bus %s: %w", bus.Name, err)
		}
		defer d.Close()
		if !asJSON {
			fmt.Fprintf(stdout, "scanning %s: unit ids %d..%d, %s %d, timeout %s\n", bus.Name, from, to, table, address, f.timeout)
		}
		found := []scanResult{}
		prog := scanProgress{w: stderr, on: isTerminal(stderr), from: from, to: to}
		defer prog.clear()
		for id := from; id <= to; id++ {
			if err := cmd.Context().Err(); err != nil {
				return err
			}
			prog.show(id, len(found))
			_, err := d.Read(byte(id), table, uint16(address), 1)
			var ee *modbus.ExceptionError
			switch {
			case err == nil:
				found = append(found, scanResult{Slave: id, Reply: "data"})
			case errors.As(err, &ee) && bus.Protocol == "tcp" && (ee.Code == modbus.ExGatewayPathUnavail || ee.Code == modbus.ExGatewayTargetFailed):
				continue // the gateway answered for an absent unit
			case errors.As(err, &ee):
				found = append(found, scanResult{Slave: id, Reply: fmt.Sprintf("exception %d (%s)", ee.Code, modbus.ExceptionName(ee.Code))})
			case errors.Is(err, modbus.ErrTimeout):
				continue
			case errors.Is(err, modbus.ErrBusDown) && !errors.Is(err, modbus.ErrFrame):
				return fmt.Errorf("bus %s: %w", bus.Name, err)
			default:
				// A garbled reply: something is on the line, maybe at
				// another baud rate or parity (a TCP stream out of step
				// is reopened by the next read).
				prog.clear()
				fmt.Fprintf(stderr, "unit %d: %v\n", id, explainFrame(err))
				continue
			}
			if !asJSON {
				prog.clear()
				fmt.Fprintf(stdout, "unit %3d: answers (%s)\n", id, found[len(found)-1].Reply)
			}
		}
		if asJSON {
			return writeJSON(stdout, found)
		}
		ids := make([]string, len(found))
		for i, r := range found {
			ids[i] = strconv.Itoa(r.Slave)
		}
		if len(found) == 0 {
			fmt.Fprintln(stdout, "no unit answered (check wiring A/B, baud, parity, termination)")
		} else {
			fmt.Fprintf(stdout, "%d unit(s) answered: %s\n", len(found), strings.Join(ids, ", "))
		}
		return nil
	}
	return cmd
}

// scanRefused is the error of a scan of a serial port another process
// holds: a scan through the agent would stall its polls for minutes, so
// it says how to read one unit through the agent, or to stop it.
func scanRefused(cmd *cobra.Command, t *target, device string, err error) error {
	if _, name := portOwner(cmd, t, device); name != "" {
		return fmt.Errorf("serial port %s is owned by the running agent (bus %s): a scan would stall its polls. "+
			"Read one unit through the agent: hazmon probe --bus %s --slave N; or stop the agent to scan (systemctl stop hazmon)",
			device, name, name)
	}
	return fmt.Errorf("%w: stop it first (systemctl stop hazmon); to read one unit through the running agent: hazmon probe --bus NAME --slave N", err)
}

// portOwner asks the running agent (if any answers at t's socket within
// 2 s) which of its RTU buses uses device: the bus name, or "".
func portOwner(cmd *cobra.Command, t *target, device string) (*control.Client, string) {
	c, err := t.client()
	if err != nil {
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return nil, ""
	}
	for _, b := range st.Buses {
		if b.Protocol == "rtu" && sameDevice(b.Address, device) {
			return c, b.Name
		}
	}
	return nil, ""
}

// sameDevice reports whether paths a and b name the same device (one
// may be a symlink such as /dev/serial/by-id/...).
func sameDevice(a, b string) bool {
	if a == b {
		return true
	}
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// scanProgress is scan's single updating line on a terminal's stderr:
// "unit 37 of 1..247, 2 answered"; nothing when on is false.
type scanProgress struct {
	w        io.Writer
	on       bool
	from, to int
	shown    bool
}

func (p *scanProgress) show(id, found int) {
	if !p.on {
		return
	}
	fmt.Fprintf(p.w, "\r%s%s", scanProgressLine(id, p.from, p.to, found), clearEOL)
	p.shown = true
}

// clear erases the progress line before other output (and at the end).
func (p *scanProgress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r"+clearEOL)
		p.shown = false
	}
}

func scanProgressLine(id, from, to, found int) string {
	return fmt.Sprintf("scanning unit %d of %d..%d (%d%%), %d answered", id, from, to, 100*(id-from)/max(to-from+1, 1), found)
}
