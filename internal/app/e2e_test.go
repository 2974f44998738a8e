package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

const pyPython = "/usr/bin/python3" // Debian's: the python3 on PATH may not see python3-pymodbus

// startPySite runs testdata/pysite.py, a pymodbus slave independent of
// hazmon's own Modbus code, until the test ends.
func startPySite(t *testing.T, args ...string) {
	t.Helper()
	if err := exec.Command(pyPython, "-c", "import pymodbus.server, serial_asyncio").Run(); err != nil {
		t.Fatalf("%s cannot import pymodbus (scripts/deps.sh installs python3-pymodbus python3-serial-asyncio): %v", pyPython, err)
	}
	cmd := exec.Command(pyPython, append([]string{"testdata/pysite.py"}, args...)...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("pysite output:\n%s", out.String())
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// want is what the subscriber must see for each sensor of siteSensors:
// an exact value with status normal, or a fault with a reason containing err.
type want struct {
	value float64
	err   string
}

const siteSensors = `
  - {id: CH4-101, type: methane, bus: B, slave: 7, table: holding, address: 0, format: uint16, scale: 0.01, unit: "%%CH4", interval: 200ms, range: [0, 4]}
  - {id: T-1, type: temperature, bus: B, slave: 7, table: holding, address: 1, format: int16, scale: 0.1, unit: degC, interval: 200ms, range: [-40, 80]}
  - {id: LVL-1, type: water_level, bus: B, slave: 7, table: holding, address: 2, format: float32, byte_order: CDAB, unit: m, interval: 200ms, range: [0, 1000]}
  - {id: CNT-1, type: generic, bus: B, slave: 7, table: holding, address: 4, format: int32, unit: count, interval: 200ms, range: [-1000000, 1000000]}
  - {id: NOVAL-1, type: generic, bus: B, slave: 7, table: holding, address: 6, format: uint16, no_value: [65535], unit: x, interval: 200ms, range: [0, 100]}
  - {id: RANGE-1, type: methane, bus: B, slave: 7, table: holding, address: 7, format: uint16, scale: 0.01, unit: "%%CH4", interval: 200ms, range: [0, 4]}
  - {id: PT-1, type: pressure, bus: B, slave: 7, table: input, address: 0, format: float32, unit: kPa, interval: 200ms, range: [0, 200000]}
  - {id: COIL-3, type: digital, bus: B, slave: 7, table: coil, address: 3, interval: 200ms}
  - {id: DI-4, type: digital, bus: B, slave: 7, table: discrete, address: 4, interval: 200ms}
  - {id: GONE-1, type: co, bus: B, slave: 7, table: holding, address: 150, format: uint16, unit: ppm, interval: 200ms, range: [0, 100]}
`

var siteWant = map[string]want{
	"CH4-101": {value: 0.52},
	"T-1":     {value: -10.6},
	"LVL-1":   {value: 238.6087},
	"CNT-1":   {value: -123456},
	"NOVAL-1": {err: "no-value code"},
	"RANGE-1": {err: "outside range"},
	"PT-1":    {value: 123456},
	"COIL-3":  {value: 1},
	"DI-4":    {value: 1},
	"GONE-1":  {err: "illegal data address"},
}

// TestApp_IndependentSlave is the main job end to end on real parts: a
// pymodbus slave (not hazmon's simulator) over Modbus TCP and over RTU on a
// socat pty → the agent → a real Mosquitto → a subscriber. Every payload
// must validate against the contract's JSON Schemas and carry exactly the
// expected engineering values and statuses, with seq increasing by one and
// the retained status going online, then offline on shutdown.
func TestApp_IndependentSlave(t *testing.T) {
	for _, proto := range []string{"tcp", "rtu"} {
		t.Run(proto, func(t *testing.T) {
			var bus string
			switch proto {
			case "tcp":
				port := freePort(t)
				startPySite(t, "tcp", fmt.Sprint(port))
				bus = fmt.Sprintf(`{name: B, protocol: tcp, address: "127.0.0.1:%d", timeout: 500ms}`, port)
			case "rtu":
				slaveEnd, clientEnd := mbslavetest.PtyPair(t)
				startPySite(t, "rtu", slaveEnd)
				bus = fmt.Sprintf(`{name: B, protocol: rtu, device: %s, baud: 9600, parity: E, timeout: 1s}`, clientEnd)
			}
			sensors := siteSensors
			if proto == "rtu" {
				// Ten sensors every 200 ms over-subscribe a 9600-baud line on a
				// loaded machine (the scheduler then slows the non-gas ones):
				// poll the serial bus at a pace it carries.
				sensors = strings.ReplaceAll(sensors, "interval: 200ms", "interval: 1s")
			}
			broker := brokertest.Start(t)
			sub := broker.Subscribe(t, "platform-"+proto, "hazmon/v1/site-0001/gw-"+proto+"/#")
			cfg := loadConfig(t, fmt.Sprintf(`agent: {id: gw-%s, site: site-0001, data_dir: %s}
mqtt: {brokers: [%q], keepalive: 5s}
buses:
  - %s
sensors:`+sensors, proto, t.TempDir(), broker.URL, bus))

			_, stop := runApp(t, cfg)

			seen := map[string]bool{}
			var lastSeq uint64
			online := false
			deadline := time.After(60 * time.Second)
			for len(seen) < len(siteWant) || !online {
				select {
				case m := <-sub:
					kind := m.Topic[strings.LastIndex(m.Topic, "/")+1:]
					if err := contract.Validate(kind, m.Payload); err != nil {
						t.Fatalf("%s payload fails its schema: %v\n%s", kind, err, m.Payload)
					}
					switch kind {
					case "status":
						var s contract.Status
						mustJSON(t, m.Payload, &s)
						if s.State == "online" {
							online = true
							if len(s.Sensors) != len(siteWant) {
								t.Errorf("status sensors = %v", s.Sensors)
							}

						}
					case "telemetry":
						var tm struct {
							Seq      uint64             `json:"seq"`
							Agent    string             `json:"agent"`
							Readings []contract.Reading `json:"readings"`
						}
						mustJSON(t, m.Payload, &tm)
						if lastSeq != 0 && tm.Seq != lastSeq+1 {
							t.Errorf("telemetry seq %d after %d", tm.Seq, lastSeq)
						}
						lastSeq = tm.Seq
						for _, r := range tm.Readings {
							if checkReading(t, r) {
								seen[r.Sensor] = true
							}
						}
					}
				case <-deadline:
					t.Fatalf("after 60s: online=%v, sensors seen %v", online, seen)
				}
			}
			if lastSeq < 1 {
				t.Fatalf("no telemetry seq")
			}

			checkRetainedStatus(t, broker, "mid-"+proto, "hazmon/v1/site-0001/gw-"+proto+"/status", "online")
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			// A new subscriber gets the retained status: offline after a clean shutdown.
			checkRetainedStatus(t, broker, "late-"+proto, "hazmon/v1/site-0001/gw-"+proto+"/status", "offline")
		})
	}
}

// checkRetainedStatus subscribes a new client to topic and expects the
// retained status message with the given state.
func checkRetainedStatus(t *testing.T, broker *brokertest.Broker, client, topic, state string) {
	t.Helper()
	ch := broker.Subscribe(t, client, topic)
	select {
	case m := <-ch:
		var s contract.Status
		mustJSON(t, m.Payload, &s)
		if err := contract.Validate("status", m.Payload); err != nil {
			t.Fatal(err)
		}
		if !m.Retained || s.State != state {
			t.Fatalf("retained status = %s (retained %v), want %s", m.Payload, m.Retained, state)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no retained status on %s", topic)
	}
}

// checkReading fails the test on a wrong reading and reports whether r
// is the sensor's expected outcome (a "bus down" fault while the slave is
// still starting is neither).
func checkReading(t *testing.T, r contract.Reading) bool {
	t.Helper()
	w, ok := siteWant[r.Sensor]
	if !ok {
		t.Errorf("unexpected sensor %q", r.Sensor)
		return false
	}
	if r.Status == "fault" && r.Value == nil && (strings.Contains(r.Error, "bus down") || strings.Contains(r.Error, "timeout")) {
		// The first polls can race the slave's start-up, and a loaded
		// machine can miss a 9600-baud reply: an honest fault, not a wrong
		// value. Every sensor must still show its expected outcome.
		return false
	}
	if w.err != "" {
		if r.Status != "fault" || r.Value != nil || !strings.Contains(r.Error, w.err) {
			t.Errorf("%s: status %s value %v error %q, want fault %q", r.Sensor, r.Status, deref(r.Value), r.Error, w.err)
			return false
		}
		return true
	}
	if r.Status != "normal" || r.Value == nil || *r.Value != w.value {
		t.Errorf("%s: status %s value %v error %q, want normal %v", r.Sensor, r.Status, deref(r.Value), r.Error, w.value)
		return false
	}
	return true
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

func loadConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	l, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return l.Config
}

// runApp starts an App on cfg. stop cancels it and returns Run's result;
// it is also called at cleanup.
func runApp(t *testing.T, cfg *config.Config) (a *App, stop func() error) {
	t.Helper()
	return runAppFile(t, cfg, "")
}

// runAppFile is runApp with the config file path Reload re-reads. Each
// agent gets its own control socket in a temp dir.
func runAppFile(t *testing.T, cfg *config.Config, path string) (a *App, stop func() error) {
	t.Helper()
	return runAppWith(t, cfg, Options{ConfigPath: path})
}

// runAppWith is runApp with the given Options (a test logger unless set).
func runAppWith(t *testing.T, cfg *config.Config, opts Options) (a *App, stop func() error) {
	t.Helper()
	if cfg.Control.Socket == config.DefaultSocket {
		cfg.Control.Socket = filepath.Join(t.TempDir(), "hazmon.sock")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	a, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitRunning(t, a, done)
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("App.Run did not return within 30s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return a, stop
}

// waitRunning waits until a's Run has opened the buffer and runs (its
// control state says running); a Run that ends first fails the test.
func waitRunning(t *testing.T, a *App, done chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.ctl.mu.Lock()
		st := a.ctl.state
		a.ctl.mu.Unlock()
		if st == control.StateRunning {
			return
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run ended before running: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("agent not running within 30s")
		}
	}
}
