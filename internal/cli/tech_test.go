package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
sensors:
  - {id: CH4-101, type: methane, bus: B, slave: 1, table: holding, address: 0, format: uint16, scale: 0.01, unit: "%%CH4", interval: 200ms, range: [0, 4]}
  - {id: LVL-1, type: water_level, bus: B, slave: 1, table: holding, address: 10, format: float32, unit: m, interval: 200ms, range: [0, 200000]}
%s`, ag.dataDir, brokerURL, ag.socket, addr, extra)
	if err := os.WriteFile(ag.cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := config.Load(ag.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(l.Config, app.Options{ConfigPath: ag.cfgPath, DrainTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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

func checkWidth(t *testing.T, what, text string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if n := utf8.RuneCountInString(strings.TrimPrefix(l, clearScreen)); n > Width {
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
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	code, out, errs = hzCtx(t, ctx, "", "watch", "--socket", ag.socket, "--interval", "200ms")
	if code != 0 {
		t.Fatalf("watch exit %d: %s", code, errs)
	}
	if n := strings.Count(out, clearScreen); n < 3 {
		t.Errorf("watch drew %d frames in 1.5s at 200ms, want >= 3", n)
	}
	frames := strings.Split(out, clearScreen)
	last := frames[len(frames)-1]
	mustContain(t, "watch frame", last, "CH4-101", "0.52", "Ctrl-C quits")
	checkWidth(t, "watch", out)
	if rows := strings.Count(last, "\n"); rows > 24 {
		t.Errorf("watch frame has %d rows, more than a 24-row terminal", rows)
	}
}

func TestStatus_AgentNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, _, errs := hz(t, "", "status", "--socket", sock)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	mustContain(t, "stderr", errs, "agent not running (no socket at "+sock+")")
}

var wantFloatABCD = row("ABCD", "1206984704", "1206984704", "123456")

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
		row("10", "0x47F1", "18417", "18417", "61767", "-3769"), row("11", "0x2000", "8192", "8192", "32", "32"), wantFloatABCD,
		row("CDAB", "536889329", "536889329", "1.086583e-19"), row("BADC", "-247005152", "4047962144", "-9.854027e+29"))
	checkWidth(t, "probe", out)

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
	mustContain(t, "probe direct", normRows(out), "B, slave 1, holding 0..0, via direct", row("0", "0x0034", "52", "52", "13312", "13312"))
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
		row("CDAB", "1206984704", "1206984704", "123456"))

	code, out, errs = hz(t, "", "probe", "--rtu", dev, "--parity", "N", "--slave", "3", "--count", "1")
	if code != 0 {
		t.Fatalf("probe rtu unit 3 exit %d: %s", code, errs)
	}
	mustContain(t, "probe rtu unit 3", normRows(out), row("0", "0xFFFF", "65535", "-1", "65535", "-1"))

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
	waitFor(t, "10 readings buffered", func() bool {
		st, err := c.BufferStats(context.Background())
		return err == nil && st.Pending >= 10
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
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Stream == "" || rec.Record.Sensor == "" {
		t.Errorf("jsonl line %q: %v", lines[0], err)
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
	if code != 0 {
		t.Fatalf("reload of an unchanged file: exit %d, %q", code, errs)
	}
	mustContain(t, "reload", out, "reloaded "+ag.cfgPath)

	// A broken file is refused with its error located; the agent keeps running.
	good, err := os.ReadFile(ag.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "interval: 200ms, range: [0, 4]", "interval: 200ms, range: [0, 4], colour: red", 1)
	if err := os.WriteFile(ag.cfgPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = hz(t, "", "reload", "--socket", ag.socket)
	if code == 0 {
		t.Fatal("reload of a broken file succeeded")
	}
	mustContain(t, "bad reload", errs, "the running config stays", `sensors[0].colour: unknown key "colour"`)
	if st, err := control.NewClient(ag.socket).Status(context.Background()); err != nil || st.State != "running" {
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
		{"buffer", "stats"}, {"buffer", "export"}, {"config", "show"}, {"reload"}} {
		code, out, _ := hz(t, "", append(args, "--help")...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "hazmon "+args[0]) {
			t.Errorf("%v --help: exit %d, no example:\n%s", args, code, out)
		}
	}
}
