package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/decode"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/spf13/cobra"
)

// busFlags select a bus: --bus NAME (from the config, or the running
// agent's), or a direct --tcp ADDR / --rtu DEV with its line settings.
type busFlags struct {
	bus, tcp, rtu  string
	baud, dataBits int
	stopBits       int
	parity         string
	timeout        time.Duration
}

func addBusFlags(cmd *cobra.Command, f *busFlags, defTimeout time.Duration, withBus bool) {
	if withBus {
		cmd.Flags().StringVar(&f.bus, "bus", "", "bus name of the config (via the agent if running)")
	}
	cmd.Flags().StringVar(&f.tcp, "tcp", "", "Modbus TCP slave or gateway host:port, direct")
	cmd.Flags().StringVar(&f.rtu, "rtu", "", "RS-485 serial device (/dev/ttyUSB0), direct")
	cmd.Flags().IntVar(&f.baud, "baud", 9600, "rtu: baud rate")
	cmd.Flags().StringVar(&f.parity, "parity", "E", "rtu: parity N, E or O")
	cmd.Flags().IntVar(&f.dataBits, "data-bits", 8, "rtu: data bits")
	cmd.Flags().IntVar(&f.stopBits, "stop-bits", 1, "rtu: stop bits 1 or 2")
	cmd.Flags().DurationVar(&f.timeout, "timeout", defTimeout, "reply timeout per request")
}

// direct returns the bus for --tcp or --rtu.
func (f *busFlags) direct() (config.Bus, error) {
	switch {
	case f.tcp != "" && f.rtu != "":
		return config.Bus{}, errors.New("give --tcp or --rtu, not both")
	case f.tcp != "":
		return config.Bus{Name: "tcp " + f.tcp, Protocol: "tcp", Address: f.tcp, Timeout: config.Duration(f.timeout)}, nil
	case f.rtu != "":
		return config.Bus{Name: "rtu " + f.rtu, Protocol: "rtu", Device: f.rtu, Baud: f.baud, Parity: strings.ToUpper(f.parity),
			DataBits: f.dataBits, StopBits: f.stopBits, Timeout: config.Duration(f.timeout)}, nil
	}
	return config.Bus{}, errors.New("give --bus NAME, --tcp HOST:PORT or --rtu DEVICE")
}

func newProbe(stdout io.Writer) *cobra.Command {
	var f busFlags
	var req control.ProbeRequest
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Read registers once; show them in every format and byte order",
		Long: "Probe reads once and shows the registers in each format and byte order, to\n" +
			"find a sensor's format and byte_order. --bus reads through the running agent\n" +
			"(it owns the port), or with --config's bus settings if it is stopped; so does\n" +
			"--rtu DEV when the running agent owns DEV.",
		Example: "  hazmon probe --bus rs485-1 --slave 3 --address 100 --count 4\n" +
			"  hazmon probe --tcp 192.168.1.50:502 --table input --count 2",
		Args: cobra.NoArgs,
	}
	t := addTarget(cmd)
	addBusFlags(cmd, &f, 0, true)
	cmd.Flags().IntVar(&req.Slave, "slave", 1, "slave (unit) id")
	cmd.Flags().StringVar(&req.Table, "table", "holding", "holding, input, coil or discrete")
	cmd.Flags().IntVar(&req.Address, "address", 0, "0-based address (register 40001 is holding 0)")
	cmd.Flags().IntVar(&req.Count, "count", 2, "registers or bits to read")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw result as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		req.Table = strings.ToLower(req.Table)
		if err := control.CheckProbe(req); err != nil {
			return err
		}
		var res control.ProbeResult
		var err error
		if f.bus != "" {
			res, err = probeBus(cmd, t, &f, req)
		} else {
			res, err = probeDirect(cmd, t, &f, req)
		}
		if err != nil {
			return explainFrame(err)
		}
		if asJSON {
			return writeJSON(stdout, res)
		}
		_, err = io.WriteString(stdout, renderProbe(res))
		return err
	}
	return cmd
}

// probeBus reads through the running agent, or directly with the
// config's settings for the bus when no agent answers.
func probeBus(cmd *cobra.Command, t *target, f *busFlags, req control.ProbeRequest) (control.ProbeResult, error) {
	if f.tcp != "" || f.rtu != "" {
		return control.ProbeResult{}, errors.New("give --bus or --tcp/--rtu, not both")
	}
	req.Bus = f.bus
	c, err := t.client()
	if err != nil {
		return control.ProbeResult{}, err
	}
	res, err := c.Probe(cmd.Context(), req)
	if !errors.Is(err, control.ErrNotRunning) {
		return res, err
	}
	cfg, cerr := t.loadConfig()
	if cerr != nil {
		return control.ProbeResult{}, fmt.Errorf("%v; and the bus settings: %w", err, cerr)
	}
	if cfg == nil {
		return control.ProbeResult{}, fmt.Errorf("%v, and no config file %s for bus %q (give --config, or --tcp/--rtu)", err, t.config, f.bus)
	}
	bus := cfg.Bus(f.bus)
	if bus == nil {
		return control.ProbeResult{}, fmt.Errorf("bus %q is not in %s (buses: %s)", f.bus, t.config, strings.Join(busList(cfg), ", "))
	}
	b := *bus
	if f.timeout > 0 {
		b.Timeout = config.Duration(f.timeout)
	}
	return readDirect(b, req)
}

func busList(c *config.Config) []string {
	var s []string
	for _, b := range c.Buses {
		s = append(s, b.Name)
	}
	return s
}

// probeDirect reads with --tcp or --rtu. A serial port the running
// agent owns is read through the agent instead (its line settings).
func probeDirect(cmd *cobra.Command, t *target, f *busFlags, req control.ProbeRequest) (control.ProbeResult, error) {
	if f.timeout <= 0 {
		f.timeout = time.Second
	}
	bus, err := f.direct()
	if err != nil {
		return control.ProbeResult{}, err
	}
	res, err := readDirect(bus, req)
	if bus.Protocol != "rtu" || !errors.Is(err, modbus.ErrPortInUse) {
		return res, err
	}
	c, name := portOwner(cmd, t, bus.Device)
	if name == "" {
		return control.ProbeResult{}, fmt.Errorf("%w; if the agent owns it, read through it: hazmon probe --bus NAME (hazmon status lists the buses)", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s is owned by the running agent: reading through its bus %s (with its line settings)\n", bus.Device, name)
	req.Bus = name
	return c.Probe(cmd.Context(), req)
}

// readDirect is one read with a client of our own on bus.
func readDirect(bus config.Bus, req control.ProbeRequest) (control.ProbeResult, error) {
	if bus.Timeout <= 0 {
		bus.Timeout = config.Duration(time.Second)
	}
	d, err := modbus.Dial(bus)
	if err != nil {
		return control.ProbeResult{}, fmt.Errorf("bus %s: %w", bus.Name, err)
	}
	defer d.Close()
	start := time.Now()
	data, err := d.Read(byte(req.Slave), req.Table, uint16(req.Address), uint16(req.Count))
	if err != nil {
		return control.ProbeResult{}, fmt.Errorf("bus %s: read slave %d %s %d+%d: %w", bus.Name, req.Slave, req.Table, req.Address, req.Count, err)
	}
	res := control.ProbeResult{Via: "direct", Bus: bus.Name, Slave: req.Slave, Table: req.Table, Address: req.Address,
		RTTMs: float64(time.Since(start).Microseconds()) / 1000}
	if err := control.FillProbeResult(&res, data, req.Count); err != nil {
		return control.ProbeResult{}, fmt.Errorf("bus %s: %w", bus.Name, err)
	}
	return res, nil
}

// orders are the byte orders shown, in config spelling.
var orders = []string{decode.OrderABCD, decode.OrderCDAB, decode.OrderBADC, decode.OrderDCBA}

// decoded formats one decoding with the agent's own decoder, or its
// fault in a word (NaN, Inf) so the table keeps its columns.
func decoded(format, order string, words ...uint16) string {
	sp := decode.Spec{Format: format, Order: order, Scale: 1}
	v, err := sp.Registers(words)
	switch {
	case errors.Is(err, decode.ErrNaN):
		return "NaN"
	case errors.Is(err, decode.ErrInf):
		return "Inf"
	case err != nil:
		return "error"
	}
	if format == decode.FormatFloat32 {
		return strconv.FormatFloat(v, 'g', 7, 64) // float32 carries ~7 significant digits
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// renderProbe prints the read as one table: a row per format, a column
// per byte order (config spelling). Each register has its uint16 and
// int16 rows (BADC is the bytes swapped; CDAB and DCBA do not apply to one
// register); each pair of registers has int32, uint32 and float32 rows.
// Four registers fit an 80×24 terminal.
func renderProbe(r control.ProbeResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, slave %d, %s %d..%d, via %s, %.1f ms\n", r.Bus, r.Slave, r.Table, r.Address,
		r.Address+max(len(r.Registers), len(r.Bits))-1, r.Via, r.RTTMs)
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	if len(r.Bits) > 0 {
		fmt.Fprintln(tw, "ADDR\tBIT")
		for i, on := range r.Bits {
			v := 0
			if on {
				v = 1
			}
			fmt.Fprintf(tw, "%d\t%d\n", r.Address+i, v)
		}
		tw.Flush()
		return b.String()
	}
	fmt.Fprintln(tw, "ADDR\tHEX\tFORMAT\tABCD\tCDAB\tBADC\tDCBA")
	for i, w := range r.Registers {
		fmt.Fprintf(tw, "%d\t0x%04X\tuint16\t%s\t\t%s\n", r.Address+i, w,
			decoded(decode.FormatUint16, decode.OrderABCD, w), decoded(decode.FormatUint16, decode.OrderBADC, w))
		fmt.Fprintf(tw, "\t\tint16\t%s\t\t%s\n",
			decoded(decode.FormatInt16, decode.OrderABCD, w), decoded(decode.FormatInt16, decode.OrderBADC, w))
	}
	for i := 0; i+1 < len(r.Registers); i++ {
		w0, w1 := r.Registers[i], r.Registers[i+1]
		for j, f := range []string{decode.FormatInt32, decode.FormatUint32, decode.FormatFloat32} {
			addr := ""
			if j == 0 {
				addr = fmt.Sprintf("%d-%d", r.Address+i, r.Address+i+1)
			}
			fmt.Fprintf(tw, "%s\t\t%s", addr, f)
			for _, o := range orders {
				fmt.Fprintf(tw, "\t%s", decoded(f, o, w0, w1))
			}
			fmt.Fprintln(tw)
		}
	}
	tw.Flush()
	return b.String()
}
