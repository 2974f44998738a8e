package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hazmon/hazmon/internal/app"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// Register map of the test slave (unit 1), in the field's numbers:
// holding 0 = 52 → CH4-101 0.52 %CH4 (uint16 × 0.01); holding 10-11 =
// 0x47F1 0x2000 → LVL-1 float32 ABCD 123456; input 0-1 = 0x2000 0x47F1 →
// the same float in CDAB.
func testBank() *mbslave.Bank {
	b := mbslave.NewBank()
	b.AddUnit(1)
	b.SetHolding(1, 0, 52)
	b.SetHolding(1, 10, 0x47F1, 0x2000)
	b.SetInput(1, 0, 0x2000, 0x47F1)
	b.SetDiscrete(1, 4, true)
	return b
}

type agent struct {
	cfgPath string
	socket  string
	dataDir string
	bank    *mbslave.Bank
	stop    func() // stops the agent and waits; safe to call twice
}

// startAgent runs an in-process agent against an mbslave TCP slave and the
// broker URL given, with its control socket in a temp folder, and waits
// until it reports running with CH4-101 read.
func startAgent(t *testing.T, brokerURL string, extra string) *agent {
	t.Helper()
	return startAgentWith(t, brokerURL, "", extra)
}

// startAgentWith is startAgent with extra bus lines (YAML list items under
// buses:) and extra sensor lines (under sensors:).
func startAgentWith(t *testing.T, brokerURL, extraBuses, extraSensors string) *agent {
	t.Helper()
	return startAgentOpts(t, brokerURL, extraBuses, extraSensors, nil)
}

// startAgentOpts is startAgentWith with a hook that may change the App's
// options before New.
func startAgentOpts(t *testing.T, brokerURL, extraBuses, extraSensors string, opts func(*app.Options)) *agent {
	t.Helper()
	bank := testBank()
	addr := mbslavetest.StartTCP(t, bank)
	dir := t.TempDir()
	ag := &agent{socket: filepath.Join(dir, "h.sock"), dataDir: filepath.Join(dir, "data"), bank: bank,
		cfgPath: filepath.Join(dir, "hazmon.yaml")}
	yml := fmt.Sprintf(`agent: {id: gw-cli, site: site-0001, data_dir: %s}
mqtt: {brokers: [%q], keepalive: 5s, connect_timeout: 1s}
control: {socket: %s}
buses:
  - {name: B, protocol: tcp, address: %q, timeout: 1s}
%ssensors:
  - {id: CH4-101, type: methane, bus: B, slave: 1, table: holding, address: 0, format: uint16, scale: 0.01, unit: "%%CH4", interval: 200ms, range: [0, 4]}
  - {id: LVL-1, type: water_level, bus: B, slave: 1, table: holding, address: 10, format: float32, unit: m, interval: 200ms, range: [0, 200000]}
%s`, ag.dataDir, brokerURL, ag.socket, addr, extraBuses, extraSensors)
	if err := os.WriteFile(ag.cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := config.Load(ag.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	o := app.Options{ConfigPath: ag.cfgPath, DrainTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if opts != nil {
		opts(&o)
	}
	a, err := app.New(l.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	ag.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("agent did not stop within 30s")
			}
		})
	}
	t.Cleanup(ag.stop)

	c := control.NewClient(ag.socket)
	waitFor(t, "agent running with CH4-101 = 0.52", func() bool {
		st, err := c.Status(context.Background())
		if err != nil || st.State != control.StateRunning {
			return false
		}
		for _, s := range st.Sensors {
			if s.ID == "CH4-101" && s.Value != nil && *s.Value == 0.52 {
				return true
			}
		}
		return false
	})
	return ag
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hz runs the CLI in-process and returns exit code, stdout and stderr.
func hz(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return hzCtx(t, context.Background(), stdin, args...)
}

func hzCtx(t *testing.T, ctx context.Context, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: missing %q in:\n%s", what, w, got)
		}
	}
}

// ansi matches the escape sequences watch draws with.
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

func checkWidth(t *testing.T, what, text string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if n := utf8.RuneCountInString(ansi.ReplaceAllString(l, "")); n > Width {
			t.Errorf("%s: line of %d columns (> %d): %q", what, n, Width, l)
		}
	}
}

func TestStatusAndWatch_RunningAgent(t *testing.T) {
	broker := brokertest.Start(t)
	ag := startAgent(t, broker.URL, "")
	c := control.NewClient(ag.socket)
	waitFor(t, "MQTT link up", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && st.MQTT.Connected
	})

	code, out, errs := hz(t, "", "status", "--config", ag.cfgPath)
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errs)
	}
	mustContain(t, "status", out, "RUNNING", "site-0001/gw-cli", "CH4-101", "0.52", "%CH4", "normal",
		"LVL-1", "123456", "MQTT    connected "+broker.URL, "ALARMS  none")
	checkWidth(t, "status", out)
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "B ") && !strings.Contains(l, " up ") {
			t.Errorf("bus line without link up: %q", l)
		}
	}

	// --json, with --socket instead of --config.
	code, out, errs = hz(t, "", "status", "--socket", ag.socket, "--json")
	if code != 0 {
		t.Fatalf("status --json exit %d: %s", code, errs)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if len(st.Sensors) != 2 || st.Sensors[0].ID != "CH4-101" || st.Sensors[0].Value == nil || *st.Sensors[0].Value != 0.52 ||
		st.Sensors[0].Unit != "%CH4" || st.Sensors[0].Status != "normal" || st.Sensors[0].AgeS < 0 || st.Sensors[0].AgeS > 10 {
		t.Errorf("sensor 0 = %+v", st.Sensors[0])
	}
	if len(st.Buses) != 1 || st.Buses[0].Name != "B" || !st.Buses[0].Connected || st.Buses[0].Requests == 0 || st.Buses[0].Errors != 0 {
		t.Errorf("buses = %+v", st.Buses)
	}
	if !st.MQTT.Connected || st.MQTT.Broker != broker.URL || st.Buffer.Path != filepath.Join(ag.dataDir, app.BufferFile) {
		t.Errorf("mqtt = %+v, buffer = %+v", st.MQTT, st.Buffer)
	}

	// watch: redraws in place until the context ends (Ctrl-C).
	t.Setenv("COLUMNS", "80")
	t.Setenv("LINES", "24")
	frames := watchFrames(t, "--socket", ag.socket)
	last := frames[len(frames)-1]
	mustContain(t, "watch frame", last, "CH4-101", "0.52", "Ctrl-C quits")
}

// watchFrames runs watch for 1.5 s at 200 ms and returns its frames with
// the escape sequences removed, after checking the redraw: one full clear,
// then cursor-home redraws, each frame at most 24 rows of 80 columns
// ($LINES, $COLUMNS) that never ends in a newline (no scrolling).
func watchFrames(t *testing.T, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	code, out, errs := hzCtx(t, ctx, "", append([]string{"watch", "--interval", "200ms"}, args...)...)
	if code != 0 {
		t.Fatalf("watch exit %d: %s", code, errs)
	}
	if !strings.HasPrefix(out, clearScreen) || strings.Count(out, clearScreen) != 1 {
		t.Errorf("watch: want one full clear, at the start; got %d", strings.Count(out, clearScreen))
	}
	raw := strings.Split(strings.TrimPrefix(out, clearScreen), cursorHome)
	if len(raw) < 3 {
		t.Fatalf("watch drew %d frames in 1.5s at 200ms, want >= 3", len(raw))
	}
	var frames []string
	for i, f := range raw {
		if !strings.HasSuffix(f, clearEOS) {
			t.Errorf("frame %d does not clear the rest of the screen: %q", i, f)
		}
		if strings.Count(f, "\n") != strings.Count(f, clearEOL+"\n") {
			t.Errorf("frame %d has a line not cleared to its end", i)
		}
		plain := ansi.ReplaceAllString(f, "")
		if rows := strings.Count(plain, "\n") + 1; rows > 24 || strings.HasSuffix(plain, "\n") {
			t.Errorf("frame %d: %d rows (or a trailing newline), more than a 24-row terminal:\n%s", i, rows, plain)
		}
		checkWidth(t, "watch frame", plain)
		frames = append(frames, plain)
	}
	return frames
}

func TestStatus_AgentNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, _, errs := hz(t, "", "status", "--socket", sock)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if want := "hazmon: no agent answers at " + sock + "\n"; errs != want {
		t.Errorf("stderr = %q, want %q", errs, want)
	}

	// From --config: the hint names the file whose control.socket it is.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hazmon.yaml")
	yml := fmt.Sprintf(`agent: {id: gw-1, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
control: {socket: %s}
buses:
  - {name: B, protocol: tcp, address: "127.0.0.1:1"}
sensors:
  - {id: CO-1, type: co, bus: B, slave: 2, table: holding, address: 0, unit: ppm, range: [0, 1000]}
`, dir, sock)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = hz(t, "", "status", "-c", cfg)
	if want := "hazmon: no agent answers at " + sock + " (control.socket of " + cfg + "; or give --socket PATH)\n"; code != 1 || errs != want {
		t.Errorf("exit %d, stderr = %q, want %q", code, errs, want)
	}

	// A --config with a typo still finds the running agent by its
	// control.socket (the agent keeps the config it loaded), with a warning.
	if err := os.WriteFile(cfg, []byte(strings.Replace(yml, "unit: ppm", "unit: ppm, colour: red", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = hz(t, "", "status", "-c", cfg)
	want := "warning: " + cfg + " is invalid (hazmon validate --config " + cfg + " says why); using its control.socket " + sock + "\n" +
		"hazmon: no agent answers at " + sock + " (control.socket of " + cfg + ", which is invalid; or give --socket PATH)\n"
	if code != 1 || errs != want {
		t.Errorf("config with a typo: exit %d, stderr %q, want %q", code, errs, want)
	}
	// One that is not YAML at all is reported as such, each problem on its line.
	if err := os.WriteFile(cfg, []byte("agent: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = hz(t, "", "status", "-c", cfg)
	if code != 1 || !strings.HasPrefix(errs, "hazmon: "+cfg+" is invalid (its control.socket is needed; or give --socket PATH):\n  "+cfg+":") {
		t.Errorf("config that is not YAML: exit %d, stderr %q", code, errs)
	}
}

// The default socket's hint says it is the default and how to point
// elsewhere (the default config file does not exist here).
func TestSocketPath_DefaultHint(t *testing.T) {
	cmd := newStatus(io.Discard)
	tg := &target{config: filepath.Join(t.TempDir(), "absent.yaml"), cmd: cmd}
	p, hint, err := tg.socketPath()
	if err != nil || p != control.DefaultSocket || hint != "default; give --config FILE to use its control.socket, or --socket PATH" {
		t.Errorf("socketPath = %q, %q, %v", p, hint, err)
	}
	e := &control.NotRunningError{Path: p, Hint: hint}
	if want := "no agent answers at /run/hazmon/hazmon.sock (default; give --config FILE to use its control.socket, or --socket PATH)"; e.Error() != want {
		t.Errorf("message = %q", e.Error())
	}
}

// wantFloatABCD is holding 10-11 (0x47F1 0x2000) as float32 in the ABCD
// column (and CDAB, BADC next to it).
var wantFloatABCD = row("float32", "123456", "1.086583e-19", "-9.854027e+29")

// row is a table line's fields, matched by hasRows whatever the alignment.
func row(fields ...string) string { return "\x00" + strings.Join(fields, " ") }

// normRows rewrites every line of out as "\x00" + its space-separated
// fields, so mustContain(row(...)) matches a table row exactly.
func normRows(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		b.WriteString("\x00" + strings.Join(strings.Fields(l), " ") + "\n")
	}
	return b.String()
}

func TestProbe_ThroughAgentAndDirect(t *testing.T) {
	ag := startAgent(t, "tcp://127.0.0.1:1", "")
	code, out, errs := hz(t, "", "probe", "--config", ag.cfgPath, "--bus", "B", "--slave", "1", "--table", "holding", "--address", "10", "--count", "2")
	if code != 0 {
		t.Fatalf("probe via agent exit %d: %s", code, errs)
	}
	mustContain(t, "probe via agent", normRows(out), "B, slave 1, holding 10..11, via agent",
		row("ADDR", "HEX", "FORMAT", "ABCD", "CDAB", "BADC", "DCBA"),
		row("10", "0x47F1", "uint16", "18417", "61767"), row("int16", "18417", "-3769"),
		row("11", "0x2000", "uint16", "8192", "32"), row("int16", "8192", "32"), wantFloatABCD,
		row("10-11", "int32", "1206984704", "536889329", "-247005152"), row("uint32", "1206984704", "536889329", "4047962144"))
	checkWidth(t, "probe", out)

	// Four registers: one table that fits an 80×24 terminal.
	code, out, errs = hz(t, "", "probe", "--config", ag.cfgPath, "--bus", "B", "--address", "10", "--count", "4")
	if code != 0 {
		t.Fatalf("probe --count 4 exit %d: %s", code, errs)
	}
	checkWidth(t, "probe --count 4", out)
	if rows := strings.Count(out, "\n"); rows > 23 {
		t.Errorf("probe --count 4 prints %d lines, more than fit a 24-row terminal:\n%s", rows, out)
	}
	mustContain(t, "probe --count 4", normRows(out), row("12", "0x0000", "uint16", "0", "0"), row("12-13", "int32", "0", "0", "0", "0"))

	// Input registers, word-swapped: the CDAB row shows the value.
	code, out, _ = hz(t, "", "probe", "--config", ag.cfgPath, "--bus", "B", "--table", "input", "--address", "0", "--count", "2", "--json")
	var res control.ProbeResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Via != "agent" || len(res.Registers) != 2 || res.Registers[0] != 0x2000 || res.Registers[1] != 0x47F1 {
		t.Errorf("probe --json exit %d: %s", code, out)
	}

	// An exception comes back with its code and name.
	code, _, errs = hz(t, "", "probe", "--config", ag.cfgPath, "--bus", "B", "--address", "20000", "--count", "1")
	if code != 1 {
		t.Errorf("probe beyond the map: exit %d", code)
	}
	mustContain(t, "probe exception", errs, "exception 2 (illegal data address)")

	// Agent stopped: --bus takes the settings from the config, direct.
	ag.stop()
	code, out, errs = hz(t, "", "probe", "--config", ag.cfgPath, "--bus", "B", "--address", "0", "--count", "1")
	if code != 0 {
		t.Fatalf("probe direct exit %d: %s", code, errs)
	}
	mustContain(t, "probe direct", normRows(out), "B, slave 1, holding 0..0, via direct", row("0", "0x0034", "uint16", "52", "13312"), row("int16", "52", "13312"))
}

func TestProbeAndScan_TCP(t *testing.T) {
	b := testBank()
	b.AddUnit(5)
	b.AddUnit(9)
	b.SetSize(9, 1) // present, but only address 0: address 5 answers with exception 2
	addr := mbslavetest.StartTCP(t, b)

	code, out, errs := hz(t, "", "probe", "--tcp", addr, "--slave", "1", "--address", "10", "--count", "2")
	if code != 0 {
		t.Fatalf("probe exit %d: %s", code, errs)
	}
	mustContain(t, "probe tcp", normRows(out), "via direct", "0x47F1", wantFloatABCD)

	code, out, errs = hz(t, "", "scan", "--tcp", addr, "--from", "1", "--to", "12", "--address", "5")
	if code != 0 {
		t.Fatalf("scan exit %d: %s", code, errs)
	}
	mustContain(t, "scan tcp", out, "unit   1: answers (data)", "unit   5: answers (data)",
		"unit   9: answers (exception 2 (illegal data address))", "3 unit(s) answered: 1, 5, 9")

	code, out, _ = hz(t, "", "scan", "--tcp", addr, "--from", "4", "--to", "6", "--json")
	var found []scanResult
	if code != 0 || json.Unmarshal([]byte(out), &found) != nil || len(found) != 1 || found[0].Slave != 5 {
		t.Errorf("scan --json exit %d: %s", code, out)
	}
}

func TestProbeAndScan_RTU(t *testing.T) {
	b := testBank()
	b.AddUnit(3)
	b.SetHolding(3, 0, 0xFFFF)
	dev := mbslavetest.StartRTU(t, b, 0)

	code, out, errs := hz(t, "", "probe", "--rtu", dev, "--baud", "9600", "--parity", "N", "--slave", "1", "--table", "input", "--address", "0", "--count", "2")
	if code != 0 {
		t.Fatalf("probe rtu exit %d: %s", code, errs)
	}
	mustContain(t, "probe rtu", normRows(out), "rtu "+dev+", slave 1, input 0..1, via direct", row("0", "0x2000"), row("1", "0x47F1"),
		row("0-1", "int32", "536889329", "1206984704"), row("float32", "1.086583e-19", "123456"))

	code, out, errs = hz(t, "", "probe", "--rtu", dev, "--parity", "N", "--slave", "3", "--count", "1")
	if code != 0 {
		t.Fatalf("probe rtu unit 3 exit %d: %s", code, errs)
	}
	mustContain(t, "probe rtu unit 3", normRows(out), row("0", "0xFFFF", "uint16", "65535", "65535"), row("int16", "-1", "-1"))

	code, out, errs = hz(t, "", "scan", "--rtu", dev, "--parity", "N", "--from", "1", "--to", "5", "--timeout", "200ms")
	if code != 0 {
		t.Fatalf("scan rtu exit %d: %s", code, errs)
	}
	mustContain(t, "scan rtu", out, "2 unit(s) answered: 1, 3")
}

func TestBuffer_StatsAndExport(t *testing.T) {
	// A broker nobody answers on: every reading stays in the buffer.
	ag := startAgent(t, "tcp://127.0.0.1:1", "")
	c := control.NewClient(ag.socket)
	waitFor(t, "12 readings buffered", func() bool {
		// Telemetry only: the start-up events are pending too.
		st, err := c.BufferStats(context.Background())
		return err == nil && st.Streams["telemetry"].Pending >= 12
	})

	code, out, errs := hz(t, "", "buffer", "stats", "--config", ag.cfgPath)
	if code != 0 {
		t.Fatalf("buffer stats exit %d: %s", code, errs)
	}
	mustContain(t, "buffer stats", out, "buffer "+filepath.Join(ag.dataDir, app.BufferFile)+" (via agent)", "telemetry", "pending")

	code, out, errs = hz(t, "", "buffer", "export", "--config", ag.cfgPath, "--since", "1h", "--format", "csv")
	if code != 0 {
		t.Fatalf("export exit %d: %s", code, errs)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("export csv: %v\n%s", err, out)
	}
	if strings.Join(rows[0], ",") != strings.Join(control.CSVHeader, ",") {
		t.Errorf("csv header = %v", rows[0])
	}
	ch4 := 0
	for _, r := range rows[1:] {
		if r[5] == "CH4-101" {
			ch4++
			if r[2] != "telemetry" || r[3] != "pending" || r[7] != "0.52" || r[8] != "%CH4" || r[9] != "normal" {
				t.Errorf("CH4 row = %v", r)
			}
		}
		if r[5] == "LVL-1" && r[7] != "123456" {
			t.Errorf("LVL row = %v", r)
		}
	}
	if ch4 < 5 {
		t.Errorf("%d CH4-101 rows exported, want >= 5", ch4)
	}
	mustContain(t, "export stderr", errs, "record(s) exported")

	// A future --since exports nothing but the header.
	code, out, _ = hz(t, "", "buffer", "export", "--socket", ag.socket, "--since", time.Now().Add(time.Hour).Format(time.RFC3339), "--format", "jsonl")
	if code != 0 || out != "" {
		t.Errorf("export since the future: exit %d, %q", code, out)
	}

	// Agent stopped: the file is opened read-only; the same records are there.
	ag.stop()
	code, out, errs = hz(t, "", "buffer", "export", "--config", ag.cfgPath, "--format", "jsonl")
	if code != 0 {
		t.Fatalf("export direct exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < ch4 {
		t.Errorf("direct export has %d lines, fewer than the %d CH4 rows before", len(lines), ch4)
	}
	var rec struct {
		Stream, State string
		Record        struct {
			Sensor string
			Value  *float64
		}
	}
	line := lines[0] // the first telemetry record (events such as start come first)
	for _, l := range lines {
		if strings.Contains(l, `"stream":"telemetry"`) {
			line = l
			break
		}
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Stream == "" || rec.Record.Sensor == "" {
		t.Errorf("jsonl line %q: %v", line, err)
	}
	code, out, errs = hz(t, "", "buffer", "stats", "--config", ag.cfgPath, "--json")
	var bs control.BufferStats
	if code != 0 || json.Unmarshal([]byte(out), &bs) != nil || bs.Pending+bs.Outbox < 10 || bs.Streams["telemetry"].Pending < 10 {
		t.Errorf("direct stats exit %d: %s %s", code, out, errs)
	}
}

func TestOutputCalibrateReload_ThroughAgent(t *testing.T) {
	ag := startAgent(t, "tcp://127.0.0.1:1", "")

	// Confirmation refused: nothing is asked of the agent.
	code, _, errs := hz(t, "n\n", "output", "test", "feed-1", "--for", "1s", "--socket", ag.socket)
	if code != 1 || !strings.Contains(errs, "Pulse output feed-1 for 1s?") || !strings.Contains(errs, "cancelled") {
		t.Errorf("refused confirmation: exit %d, %q", code, errs)
	}
	code, _, errs = hz(t, "", "output", "test", "feed-1", "--yes", "--socket", ag.socket)
	if code != 1 {
		t.Errorf("unknown output: exit %d", code)
	}
	mustContain(t, "unknown output", errs, `output "feed-1" is not configured`)

	code, _, errs = hz(t, "", "calibrate", "NOPE-1", "--for", "10m", "--socket", ag.socket)
	if code != 1 {
		t.Errorf("unknown sensor: exit %d", code)
	}
	mustContain(t, "unknown sensor", errs, `sensor "NOPE-1" is not configured`)

	code, out, errs := hz(t, "", "calibrate", "CH4-101", "--for", "10m", "--socket", ag.socket)
	if code != 0 {
		t.Fatalf("calibrate: exit %d, %q", code, errs)
	}
	mustContain(t, "calibrate", out, "CH4-101: under calibration until")
	waitFor(t, "CH4-101 reads as calibrating", func() bool {
		st, err := control.NewClient(ag.socket).Status(context.Background())
		return err == nil && len(st.Sensors) > 0 && st.Sensors[0].Status == "calibrating"
	})
	code, out, _ = hz(t, "", "calibrate", "CH4-101", "--stop", "--socket", ag.socket)
	if code != 0 || !strings.Contains(out, "CH4-101: calibration ended") {
		t.Errorf("calibrate --stop: exit %d, %q", code, out)
	}

	code, out, errs = hz(t, "", "reload", "--socket", ag.socket)
	if code != 0 || out != "config unchanged, nothing to apply ("+ag.cfgPath+")\n" {
		t.Fatalf("reload of an unchanged file: exit %d, %q, %q", code, out, errs)
	}

	// A changed file is applied and counted.
	good, err := os.ReadFile(ag.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(good), "interval: 200ms, range: [0, 200000]", "interval: 300ms, range: [0, 200000]", 1)
	if err := os.WriteFile(ag.cfgPath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = hz(t, "", "reload", "-c", ag.cfgPath)
	if code != 0 || out != "reloaded "+ag.cfgPath+": 1 bus, 2 sensors, 0 outputs\n" {
		t.Fatalf("reload of a changed file: exit %d, %q, %q", code, out, errs)
	}

	// A broken file is refused by the agent (--socket: the CLI does not
	// read the file), once, each problem on its own line.
	bad := strings.Replace(changed, "interval: 200ms, range: [0, 4]", "interval: 200ms, range: [0, 4], colour: red", 1)
	if err := os.WriteFile(ag.cfgPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = hz(t, "", "reload", "--socket", ag.socket)
	if code != 1 || out != "" || !regexp.MustCompile(`^hazmon: reload refused \(the running config stays\):\n  `+
		regexp.QuoteMeta(ag.cfgPath)+`:\d+(:\d+)?: sensors\[0\]\.colour: unknown key "colour"[^\n]*\n$`).MatchString(errs) {
		t.Errorf("bad reload via the agent: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, dup := range []string{"invalid request", "rejected", "config error(s)"} {
		if strings.Contains(errs, dup) {
			t.Errorf("bad reload repeats itself (%q): %q", dup, errs)
		}
	}

	// With -c the CLI finds the file broken itself and does not ask the agent.
	code, out, errs = hz(t, "", "reload", "-c", ag.cfgPath)
	if code != 1 || out != "" || !strings.HasPrefix(errs, "hazmon: "+ag.cfgPath+" is invalid; the running agent keeps its config:\n  "+ag.cfgPath+":") ||
		!strings.Contains(errs, `sensors[0].colour: unknown key "colour"`) || strings.Contains(errs, "socket") {
		t.Errorf("bad reload with -c: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// A valid file that only a restart can apply is refused with the reason.
	if err := os.WriteFile(ag.cfgPath, []byte(strings.Replace(changed, "id: gw-cli", "id: gw-other", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = hz(t, "", "reload", "--socket", ag.socket)
	if want := "hazmon: reload refused (the running config stays):\n  agent changed: restart needed\n"; code != 1 || errs != want {
		t.Errorf("reload needing a restart: exit %d, stderr %q, want %q", code, errs, want)
	}
	if st, err := control.NewClient(ag.socket).Status(context.Background()); err != nil || st.State != "running" || st.Agent != "gw-cli" {
		t.Fatalf("after a bad reload: %v, %+v", err, st.State)
	}
}

func TestConfigShow_Redacted(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "mqtt.pass")
	if err := os.WriteFile(pw, []byte("s3cret-in-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "hazmon.yaml")
	yml := fmt.Sprintf(`agent: {id: gw-1, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://bureau:url-secret@127.0.0.1:1883"], username: bureau, password_file: %s}
buses:
  - {name: rs485-1, protocol: rtu, device: /dev/ttyUSB0}
sensors:
  - {id: CO-1, type: co, bus: rs485-1, slave: 2, table: holding, address: 0, unit: ppm, range: [0, 1000]}
`, dir, pw)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := hz(t, "", "config", "show", "--config", cfg)
	if code != 0 {
		t.Fatalf("config show exit %d: %s", code, errs)
	}
	for _, secret := range []string{"s3cret-in-file", "url-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("config show leaks %q:\n%s", secret, out)
		}
	}
	mustContain(t, "config show", out, "password_file: "+pw, "bureau:REDACTED@127.0.0.1:1883",
		"topic_prefix: hazmon/v1", "client_id: hazmon-site-0001-gw-1", "socket: /run/hazmon/hazmon.sock",
		"baud: 9600", "parity: E", "timeout: 500ms", "format: uint16", "byte_order: ABCD", "interval: 1s")
}

func TestHelp_HasExamples(t *testing.T) {
	for _, args := range [][]string{{"status"}, {"watch"}, {"probe"}, {"scan"}, {"output", "test"}, {"calibrate"},
		{"buffer", "stats"}, {"buffer", "export"}, {"config", "show"}, {"config", "example"}, {"config", "keys"}, {"reload"}} {
		code, out, _ := hz(t, "", append(args, "--help")...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "hazmon "+args[0]) {
			t.Errorf("%v --help: exit %d, no example:\n%s", args, code, out)
		}
	}
}

// closedPort returns a loopback address nobody listens on (connect:
// connection refused).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A field trial's screen: 20 gas sensors on a bus whose gateway refuses
// connections and a broker that refuses too, on an 80×24 terminal.
func TestStatusAndWatch_TwentyFaultySensors(t *testing.T) {
	var sensors strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&sensors, "  - {id: CO-%03d, type: co, bus: DEAD, slave: 2, table: holding, address: %d, unit: ppm, interval: 200ms, range: [0, 1000]}\n", i, i)
	}
	ag := startAgentWith(t, "tcp://"+closedPort(t), fmt.Sprintf("  - {name: DEAD, protocol: tcp, address: %q, timeout: 500ms}\n", closedPort(t)), sensors.String())
	c := control.NewClient(ag.socket)
	waitFor(t, "20 sensors in fault and the MQTT error known", func() bool {
		st, err := c.Status(context.Background())
		if err != nil || st.MQTT.LastError == "" {
			return false
		}
		n := 0
		for _, s := range st.Sensors {
			if s.Status == "fault" && s.Error != "" {
				n++
			}
		}
		return n == 20
	})

	// status prints every sensor, the root cause of each error, in 80 columns.
	code, out, errs := hz(t, "", "status", "--socket", ag.socket)
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errs)
	}
	checkWidth(t, "status", out)
	lines := strings.Split(out, "\n")
	var sensorRows, busDead, mqtt []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "CO-"):
			sensorRows = append(sensorRows, l)
		case strings.HasPrefix(l, "DEAD "):
			busDead = append(busDead, l)
		case strings.HasPrefix(l, "MQTT "):
			mqtt = append(mqtt, l)
		}
	}
	if len(sensorRows) != 20 {
		t.Errorf("status shows %d of 20 CO sensors:\n%s", len(sensorRows), out)
	}
	for _, l := range sensorRows {
		if !strings.Contains(l, " fault ") || !strings.HasSuffix(l, "  connection refused") {
			t.Errorf("sensor row without its root cause: %q", l)
		}
	}
	if len(busDead) != 1 || !strings.HasSuffix(busDead[0], "  connection refused") {
		t.Errorf("bus row: %q", busDead)
	}
	if len(mqtt) != 1 || !strings.Contains(mqtt[0], "DOWN") || !strings.Contains(mqtt[0], "connection refused") {
		t.Errorf("MQTT row: %q", mqtt)
	}
	// The faulty sensors come before the healthy ones.
	if i, j := strings.Index(out, "CO-020"), strings.Index(out, "CH4-101"); i < 0 || j < i {
		t.Errorf("healthy CH4-101 listed before the faulty CO-020:\n%s", out)
	}

	// --json keeps the full error text.
	code, out, _ = hz(t, "", "status", "--socket", ag.socket, "--json")
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json exit %d: %s", code, out)
	}
	for _, s := range st.Sensors {
		if strings.HasPrefix(s.ID, "CO-") && (!strings.Contains(s.Error, "bus DEAD") || !strings.HasSuffix(s.Error, "connection refused")) {
			t.Errorf("json error of %s = %q, want the full text", s.ID, s.Error)
		}
	}

	// watch: the header stays on top, the sensors that do not fit are
	// counted, and nothing scrolls.
	t.Setenv("COLUMNS", "80")
	t.Setenv("LINES", "24")
	frames := watchFrames(t, "--socket", ag.socket)
	last := strings.Split(frames[len(frames)-1], "\n")
	if !strings.HasPrefix(last[0], "hazmon ") || !strings.Contains(last[0], "RUNNING") || !strings.HasPrefix(last[1], "MQTT    DOWN") ||
		!strings.HasPrefix(last[2], "BUFFER  ") || !strings.HasPrefix(last[3], "BUS ") {
		t.Errorf("watch header is not on top:\n%s", strings.Join(last, "\n"))
	}
	if len(last) != 24 {
		t.Errorf("watch frame has %d rows, want the full 24", len(last))
	}
	more := regexp.MustCompile(`^… (\d+) more sensors \(hazmon status shows all\)$`)
	shown, hidden := 0, 0
	for _, l := range last {
		if strings.HasPrefix(l, "CO-") || strings.HasPrefix(l, "CH4-") || strings.HasPrefix(l, "LVL-") {
			shown++
		}
		if m := more.FindStringSubmatch(l); m != nil {
			fmt.Sscan(m[1], &hidden)
		}
	}
	if shown == 0 || hidden == 0 || shown+hidden != 22 {
		t.Errorf("watch shows %d sensors and says %d more, want 22 in all:\n%s", shown, hidden, strings.Join(last, "\n"))
	}
	mustContain(t, "watch", frames[len(frames)-1], "ALARMS  FAULT 20 sensor(s): CO-001 CO-002", "connection refused", "Ctrl-C quits")

	// A smaller terminal ($LINES) is filled, not overrun.
	t.Setenv("LINES", "12")
	frames = watchFrames(t, "--socket", ag.socket)
	if rows := strings.Count(frames[len(frames)-1], "\n") + 1; rows != 12 {
		t.Errorf("12-row terminal: frame of %d rows:\n%s", rows, frames[len(frames)-1])
	}
}

func TestCause_RootOfErrors(t *testing.T) {
	for in, want := range map[string]string{
		"bus sim-tcp: bus down: connect 127.0.0.1:15020: dial tcp 127.0.0.1:15020: connect: connection refused":            "connection refused",
		"mqtt connect tcp://127.0.0.1:11899: network Error : dial tcp 127.0.0.1:11899: connect: connection refused":        "connection refused",
		"bus B: slave 1: read holding 0: read tcp 127.0.0.1:40000->127.0.0.1:502: i/o timeout":                             "i/o timeout",
		"bus B: slave 1: read holding 20000: exception 2 (illegal data address) to function 0x03":                          "exception 2 (illegal data address) to function 0x03",
		"bus B: slave 1: read holding 0: bus down: read: EOF":                                                              "read: EOF",
		"bus B: slave 1: read holding 0: malformed reply: MBAP header 48 54 54 50 2F 31 2E (protocol 21584, length 12590)": `reply "HTTP/1.": not a Modbus TCP server?`,
		"value outside valid range: 5.2 outside range [0, 4]":                                                              "5.2 outside range [0, 4]",
		"": "",
	} {
		if got := cause(in); got != want {
			t.Errorf("cause(%q) = %q, want %q", in, got, want)
		}
	}
}

// A port that answers with something other than Modbus TCP (a web server)
// is named by what it sent.
func TestProbe_NotModbusTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the Close below (cleanups run last first)
	t.Cleanup(func() { ln.Close() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 256)
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			conn.Read(buf)
			conn.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
			conn.Close()
		}
	}()
	code, _, errs := hz(t, "", "probe", "--tcp", ln.Addr().String(), "--count", "1")
	if code != 1 {
		t.Errorf("probe of a web server: exit %d", code)
	}
	mustContain(t, "probe of a web server", errs, "MBAP header 48 54 54 50 2F 31 2E", `(looks like "HTTP/1.": not a Modbus TCP server?)`)
}

func TestBuffer_Messages(t *testing.T) {
	ag := startAgent(t, "tcp://127.0.0.1:1", "")
	code, _, errs := hz(t, "", "buffer", "stats", "--file", filepath.Join(ag.dataDir, app.BufferFile))
	if code != 1 || !strings.Contains(errs, "buffer in use by the running agent; drop --file to ask the agent") {
		t.Errorf("--file while the agent runs: exit %d, %q", code, errs)
	}

	// No agent and no buffer file where the config puts it.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hazmon.yaml")
	sock := filepath.Join(dir, "none.sock")
	yml := fmt.Sprintf(`agent: {id: gw-1, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
control: {socket: %s}
buses:
  - {name: B, protocol: tcp, address: "127.0.0.1:1"}
sensors:
  - {id: CO-1, type: co, bus: B, slave: 2, table: holding, address: 0, unit: ppm, range: [0, 1000]}
`, dir, sock)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = hz(t, "", "buffer", "stats", "-c", cfg)
	want := "hazmon: no agent answers at " + sock + " (control.socket of " + cfg + "; or give --socket PATH)\n" +
		"and no buffer file at " + filepath.Join(dir, app.BufferFile) + " (agent.data_dir of " + cfg + "; or give --file PATH)\n"
	if code != 1 || errs != want {
		t.Errorf("no agent, no file: exit %d\n got %q\nwant %q", code, errs, want)
	}
}

func TestClockAndProgress(t *testing.T) {
	if got := clock(1796329865000); !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d$`).MatchString(got) {
		t.Errorf("clock = %q, want local time with its UTC offset", got)
	}
	if got := clock(0); got != "-" {
		t.Errorf("clock(0) = %q", got)
	}
	if got := scanProgressLine(37, 1, 247, 2); got != "scanning unit 37 of 1..247 (14%), 2 answered" {
		t.Errorf("progress = %q", got)
	}
	var b bytes.Buffer
	p := scanProgress{w: &b, on: true, from: 1, to: 3}
	p.show(1, 0)
	p.clear()
	p.clear()
	if want := "\rscanning unit 1 of 1..3 (0%), 0 answered" + clearEOL + "\r" + clearEOL; b.String() != want {
		t.Errorf("progress line drawn as %q, want %q", b.String(), want)
	}
	// Not a terminal: no progress at all.
	b.Reset()
	p = scanProgress{w: &b, on: false, from: 1, to: 3}
	p.show(1, 0)
	p.clear()
	if b.Len() != 0 {
		t.Errorf("progress without a terminal: %q", b.String())
	}
}

// Every help screen fits 80 columns; probe's fits 30 rows.
func TestHelp_Fits80Columns(t *testing.T) {
	for _, args := range [][]string{{}, {"run"}, {"validate"}, {"version"}, {"status"}, {"watch"}, {"probe"}, {"scan"}, {"output"}, {"output", "test"},
		{"calibrate"}, {"buffer"}, {"buffer", "stats"}, {"buffer", "export"}, {"config"}, {"config", "show"},
		{"config", "example"}, {"config", "keys"}, {"reload"}} {
		code, out, _ := hz(t, "", append(args, "--help")...)
		if code != 0 {
			t.Errorf("%v --help: exit %d", args, code)
		}
		checkWidth(t, fmt.Sprint(args, " --help"), out)
		if len(args) == 1 && args[0] == "probe" {
			if n := strings.Count(out, "\n"); n > 30 {
				t.Errorf("probe --help is %d lines", n)
			}
		}
	}
}
