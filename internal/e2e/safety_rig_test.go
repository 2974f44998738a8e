package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// The safety fault-injection suite runs the real binary against a real
// Modbus slave (mbslave over TCP: methane on unit 1, the breaker coil on
// unit 2) and a real Mosquitto, and breaks one thing at a time.
const (
	gasUnit     = 1
	breakerUnit = 2
	breakerCoil = 100
)

// safetySite is the slave and the broker of one fault-injection test.
type safetySite struct {
	bank   *mbslave.Bank
	addr   string
	broker *brokertest.Broker
	msgs   *msgLog
}

func newSafetySite(t *testing.T) *safetySite {
	t.Helper()
	s := &safetySite{bank: mbslave.NewBank(), broker: brokertest.Start(t)}
	s.bank.AddUnit(gasUnit)
	s.bank.AddUnit(breakerUnit)
	s.bank.SetHolding(gasUnit, 0, 50)              // 0.50 %CH4
	s.bank.SetHolding(gasUnit, 1, 30)              // 0.30 %CH4
	s.bank.SetCoil(breakerUnit, breakerCoil, true) // left energised by a previous run
	s.addr = mbslavetest.StartTCP(t, s.bank)
	s.msgs = collect(t, s.broker.Subscribe(t, "bureau-"+t.Name(), topics))
	return s
}

func (s *safetySite) breakerOn() bool { return s.bank.Coil(breakerUnit, breakerCoil) }

// energised reports whether the agent has written the breaker on and it
// is on (the coil starts on, as a previous run left it).
func (s *safetySite) energised() bool {
	for _, w := range s.bank.CoilWrites() {
		if w.Unit == breakerUnit && w.Addr == breakerCoil && w.On {
			return s.breakerOn()
		}
	}
	return false
}

// setCH4 sets methane sensor i (0: CH4-101, 1: CH4-102) in %CH4.
func (s *safetySite) setCH4(i int, v float64) {
	s.bank.SetHolding(gasUnit, uint16(i), uint16(v*100+0.5))
}

// safetyConfig is the YAML of one agent on a safetySite.
type safetyConfig struct {
	DataDir  string
	Socket   string // control socket (each agent its own)
	Broker   string
	Addr     string
	Rules    string // the sensors' rule lines; default: CH4-101 on the coal-face preset
	Timeout  string // bus timeout, default 300ms
	Interval string // sensor interval, default 200ms
	GasBus   string // the gas bus's YAML mapping; default a TCP bus on Addr
	Extra    string // more YAML appended
}

func (c safetyConfig) yaml() string {
	rules := or(c.Rules, `    location: coal_face
    cut_outputs: [breaker-3]`)
	gas := or(c.GasBus, fmt.Sprintf("{name: gas, protocol: tcp, address: %q, timeout: %s}", c.Addr, or(c.Timeout, "300ms")))
	return fmt.Sprintf(`agent: {id: %s, site: %s, data_dir: %q}
mqtt: {brokers: [%q], keepalive: 3s, connect_timeout: 2s, publish_timeout: 3s}
control: {socket: %q}
log: {level: debug, format: json}
buses:
  - %s
  - {name: act, protocol: tcp, address: %q, timeout: %s}
outputs:
  - {name: breaker-3, modbus: {bus: act, slave: %d, coil: %d}}
sensors:
  - id: CH4-101
    type: methane
    bus: gas
    slave: %d
    table: holding
    address: 0
    scale: 0.01
    unit: "%%CH4"
    interval: %s
    range: [0, 4]
%s
  - {id: CH4-102, type: methane, bus: gas, slave: %d, table: holding, address: 1, scale: 0.01, unit: "%%CH4", interval: %s, range: [0, 4]}
%s`, gateID, site, c.DataDir, c.Broker, c.Socket,
		gas, c.Addr, or(c.Timeout, "300ms"), breakerUnit, breakerCoil,
		gasUnit, or(c.Interval, "200ms"), rules, gasUnit, or(c.Interval, "200ms"), c.Extra)
}

func (c safetyConfig) write(t *testing.T, path string) string {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "hazmon.yaml")
	}
	if err := os.WriteFile(path, []byte(c.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a hazmon process started by a fault-injection test, with its
// stderr wherever the test wants it.
type proc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	started time.Time
}

// startProc starts bin with args; stderr nil means a buffer (returned).
func startProc(t *testing.T, bin string, env []string, stderr *os.File, args ...string) (*proc, *syncBuffer) {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	var buf *syncBuffer
	if stderr != nil {
		p.cmd.Stdout, p.cmd.Stderr = stderr, stderr
	} else {
		buf = &syncBuffer{}
		p.cmd.Stdout, p.cmd.Stderr = buf, buf
	}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() && buf != nil {
			t.Logf("agent log (tail):\n%s", tail(buf.String(), 40))
		}
	})
	return p, buf
}

// exited waits up to d for the process to end and reports whether it did.
func (p *proc) exited(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// within polls cond every 2 ms until it holds or d has passed, and
// returns how long it took (or -1).
func within(d time.Duration, cond func() bool) time.Duration {
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return -1
}

// msgLog keeps what the bureau's subscriber received.
type msgLog struct {
	mu   sync.Mutex
	msgs []brokertest.Message
}

func collect(t *testing.T, ch <-chan brokertest.Message) *msgLog {
	l := &msgLog{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case m := <-ch:
				l.mu.Lock()
				l.msgs = append(l.msgs, m)
				l.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return l
}

// count returns how many messages of kind (last topic level) came.
func (l *msgLog) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasSuffix(m.Topic, "/"+kind) {
			n++
		}
	}
	return n
}

// alarms returns the alarms received, each validated against the contract.
func (l *msgLog) alarms(t *testing.T) []contract.Alarm {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []contract.Alarm
	for _, m := range l.msgs {
		if !strings.HasSuffix(m.Topic, "/alarm") {
			continue
		}
		if err := contract.Validate(contract.KindAlarm, m.Payload); err != nil {
			t.Errorf("alarm off contract: %v: %s", err, m.Payload)
		}
		var a contract.Alarm
		if err := json.Unmarshal(m.Payload, &a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// hasAlarm reports whether an alarm of level in state came for sensor.
func (l *msgLog) hasAlarm(t *testing.T, sensor, level, state string) bool {
	for _, a := range l.alarms(t) {
		if a.Sensor == sensor && a.Level == level && a.State == state {
			return true
		}
	}
	return false
}

// events returns the events of type typ received.
func (l *msgLog) events(t *testing.T, typ string) []contract.Event {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []contract.Event
	for _, m := range l.msgs {
		if !strings.HasSuffix(m.Topic, "/event") {
			continue
		}
		var e contract.Event
		if json.Unmarshal(m.Payload, &e) == nil && e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// hazmonCLI runs the CLI binary and returns its exit code and output.
func hazmonCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(hazmonBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

// readings returns the telemetry readings of sensor received.
func (l *msgLog) readings(t *testing.T, sensor string) []contract.Reading {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []contract.Reading
	for _, m := range l.msgs {
		if !strings.HasSuffix(m.Topic, "/telemetry") {
			continue
		}
		var tm struct{ Readings []contract.Reading }
		if json.Unmarshal(m.Payload, &tm) != nil {
			continue
		}
		for _, r := range tm.Readings {
			if r.Sensor == sensor {
				out = append(out, r)
			}
		}
	}
	return out
}
