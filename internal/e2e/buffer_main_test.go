// Package e2e runs the hazmon agent as a real process (the binary built
// once in TestMain) against a Modbus TCP slave (mbslave) and a real
// Mosquitto (brokertest), and checks what a bureau subscriber receives:
// the store-and-forward guarantees of issue 4 (outages, kill -9, buffer
// cap, TLS). Every received payload is validated against the contract.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

const (
	site   = "site-e2e"
	gateID = "gw-e2e"
	topics = "hazmon/v1/" + site + "/" + gateID + "/#"
	wait   = 90 * time.Second // generous: 2 shared cores
	tick   = 10 * time.Millisecond
)

var hazmonBin string

// TestMain builds the agent, or uses the binary named by $HAZMON_E2E_BIN
// (e.g. a release build under test).
func TestMain(m *testing.M) {
	if p := os.Getenv("HAZMON_E2E_BIN"); p != "" {
		hazmonBin = p
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "hazmon-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hazmonBin = filepath.Join(dir, "hazmon")
	// Built without -race: the agent under test runs at production speed.
	cmd := exec.Command("go", "build", "-o", hazmonBin, "github.com/hazmon/hazmon/cmd/hazmon")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build hazmon: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// site is a Modbus TCP slave whose sensors (one per unit id, holding
// register 0) read a clock: the number of 10 ms ticks since t0. A reading
// stamped ts must therefore carry a value close to (ts - t0)/10 ms, which
// proves the published ts is the original sample time.
type counterSite struct {
	bank  *mbslave.Bank
	addr  string
	t0    time.Time
	units int
	stop  chan struct{}
	done  chan struct{}
}

func startSite(t *testing.T, units int) *counterSite {
	t.Helper()
	b := mbslave.NewBank()
	for u := 1; u <= units; u++ {
		b.AddUnit(uint8(u))
	}
	s := &counterSite{bank: b, t0: time.Now(), units: units, stop: make(chan struct{}), done: make(chan struct{})}
	s.set()
	s.addr = mbslavetest.StartTCP(t, b)
	go func() {
		defer close(s.done)
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tk.C:
				s.set()
			}
		}
	}()
	t.Cleanup(func() { close(s.stop); <-s.done })
	return s
}

func (s *counterSite) set() {
	v := uint16(time.Since(s.t0) / tick)
	for u := 1; u <= s.units; u++ {
		s.bank.SetHolding(uint8(u), 0, v)
	}
}

// requests returns the reads served over all units.
func (s *counterSite) requests() int {
	n := 0
	for u := 1; u <= s.units; u++ {
		n += s.bank.Requests(uint8(u))
	}
	return n
}

// checkValue reports whether value v is the counter read shortly after ts.
func (s *counterSite) checkValue(ts int64, v float64) error {
	at := s.t0.Add(time.Duration(v) * tick)
	d := at.Sub(time.UnixMilli(ts))
	// The register is read after the sample time (request latency) and is
	// updated every 2 ms in 10 ms steps.
	if d < -50*time.Millisecond || d > 3*time.Second {
		return fmt.Errorf("value %v was served at %s, %v away from its ts %d: not the original sample time", v, at.Format(time.StampMilli), d, ts)
	}
	return nil
}

// agentConfig describes the YAML written for one agent.
type agentConfig struct {
	Brokers     []string
	DataDir     string
	SlaveAddr   string
	Sensors     int
	Interval    string
	SensorName  string // id prefix; the id is prefix + "-<unit>"
	Unit        string
	MaxBytes    int64
	BatchMax    int
	TLS         map[string]string
	LogLevel    string
	KeepAlive   string
	PubTimeout  string
	ConnTimeout string
}

func (c agentConfig) write(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "agent: {id: %s, site: %s, data_dir: %q}\n", gateID, site, c.DataDir)
	fmt.Fprintf(&b, "mqtt:\n  brokers: [%s]\n", quoteJoin(c.Brokers))
	fmt.Fprintf(&b, "  keepalive: %s\n  connect_timeout: %s\n  publish_timeout: %s\n", or(c.KeepAlive, "3s"), or(c.ConnTimeout, "2s"), or(c.PubTimeout, "3s"))
	if c.BatchMax > 0 {
		fmt.Fprintf(&b, "  batch_max: %d\n", c.BatchMax)
	}
	if len(c.TLS) > 0 {
		b.WriteString("  tls:\n")
		keys := make([]string, 0, len(c.TLS))
		for k := range c.TLS {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "    %s: %q\n", k, c.TLS[k])
		}
	}
	if c.MaxBytes > 0 {
		fmt.Fprintf(&b, "buffer: {max_bytes: %d}\n", c.MaxBytes)
	}
	fmt.Fprintf(&b, "control: {socket: %q}\n", filepath.Join(c.DataDir, "hazmon.sock"))
	fmt.Fprintf(&b, "log: {level: %s, format: json}\n", or(c.LogLevel, "info"))
	fmt.Fprintf(&b, "buses:\n  - {name: site, protocol: tcp, address: %q, timeout: 1s}\nsensors:\n", c.SlaveAddr)
	for u := 1; u <= c.Sensors; u++ {
		fmt.Fprintf(&b, "  - {id: %s-%d, type: flow, bus: site, slave: %d, table: holding, address: 0, format: uint16, unit: %q, interval: %s, range: [0, 65535]}\n",
			or(c.SensorName, "FT"), u, u, or(c.Unit, "m3/h"), or(c.Interval, "100ms"))
	}
	p := filepath.Join(t.TempDir(), "hazmon.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func quoteJoin(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// agentProc is one running `hazmon run` process.
type agentProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error
}

// startAgent runs `hazmon run --config cfg` and waits for "hazmon running".
func startAgent(t *testing.T, cfg string) *agentProc {
	t.Helper()
	a := &agentProc{t: t, log: &syncBuffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(hazmonBin, "run", "--config", cfg)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start hazmon: %v", err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("agent log (tail, without eviction lines):\n%s", tail(withoutMsg(a.log.String(), "buffer evicted records"), 40))
		}
	})
	deadline := time.Now().Add(wait)
	for !strings.Contains(a.log.String(), `"msg":"hazmon running"`) {
		select {
		case <-a.done:
			t.Fatalf("hazmon exited at start-up (%v):\n%s", a.err, a.log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("hazmon not running after %v:\n%s", wait, a.log.String())
		}
	}
	return a
}

// kill sends SIGKILL (power cut) and waits for the process to end.
func (a *agentProc) kill() {
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// term sends SIGTERM and waits (bounded) for a clean exit.
func (a *agentProc) term() {
	a.t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		if a.err != nil {
			a.t.Errorf("hazmon exit after SIGTERM: %v", a.err)
		}
	case <-time.After(wait):
		a.t.Fatalf("hazmon did not stop within %v of SIGTERM", wait)
	}
}

// logLines returns the agent's JSON log records whose msg is msg.
func (a *agentProc) logLines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(a.log.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// key names one reading: sensor and sample time (unix ms).
type key struct {
	sensor string
	ts     int64
}

// got is what the subscriber received for one reading.
type got struct {
	value      float64
	seq        uint64
	historical bool
}

// recorder follows a bureau subscriber and enforces the contract on every
// message as it arrives: schema-valid; per seq stream, a seq not above the
// highest seen must be an exact repeat (same payload) of a message already
// received; a reading (sensor, ts) arrives in one seq only.
type recorder struct {
	site *counterSite
	mu   sync.Mutex
	errs []string

	maxSeq   map[string]uint64
	bySeq    map[string]map[uint64][]byte
	readings map[key]got
	events   []contract.Event
	statuses []string
	repeats  int
	msgs     int

	stop chan struct{}
	done chan struct{}
}

func newRecorder(t *testing.T, b *brokertest.Broker, clientID string, s *counterSite) *recorder {
	t.Helper()
	ch := b.Subscribe(t, clientID, topics)
	r := &recorder{site: s, maxSeq: map[string]uint64{}, bySeq: map[string]map[uint64][]byte{},
		readings: map[key]got{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stop:
				return
			case m := <-ch:
				r.add(m)
			}
		}
	}()
	t.Cleanup(func() {
		close(r.stop)
		<-r.done
	})
	return r
}

func (r *recorder) fail(format string, args ...any) {
	if len(r.errs) < 20 {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

func (r *recorder) add(m brokertest.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs++
	kind := m.Topic[strings.LastIndex(m.Topic, "/")+1:]
	if err := contract.Validate(kind, m.Payload); err != nil {
		r.fail("%s: %v: %s", m.Topic, err, m.Payload)
		return
	}
	switch kind {
	case contract.KindStatus:
		var s contract.Status
		_ = json.Unmarshal(m.Payload, &s)
		r.statuses = append(r.statuses, s.State)
		return
	case contract.KindCurrent:
		return
	}
	var hdr struct {
		Seq        uint64             `json:"seq"`
		Historical bool               `json:"historical"`
		Readings   []contract.Reading `json:"-"`
	}
	if err := json.Unmarshal(m.Payload, &hdr); err != nil {
		r.fail("%s: %v", m.Topic, err)
		return
	}
	if kind == contract.KindTelemetry {
		var tm struct {
			Readings []contract.Reading `json:"readings"`
		}
		if err := json.Unmarshal(m.Payload, &tm); err != nil {
			r.fail("%s: %v", m.Topic, err)
			return
		}
		hdr.Readings = tm.Readings
	}
	if r.bySeq[kind] == nil {
		r.bySeq[kind] = map[uint64][]byte{}
	}
	if prev, seen := r.bySeq[kind][hdr.Seq]; seen {
		if !bytes.Equal(prev, m.Payload) {
			r.fail("%s seq %d repeated with a different payload:\n%s\n%s", kind, hdr.Seq, prev, m.Payload)
		}
		r.repeats++
		return
	}
	if hdr.Seq <= r.maxSeq[kind] {
		r.fail("%s: new seq %d after seq %d (a subscriber must never see a new seq lower than one it has)", kind, hdr.Seq, r.maxSeq[kind])
	}
	r.bySeq[kind][hdr.Seq] = m.Payload
	r.maxSeq[kind] = max(r.maxSeq[kind], hdr.Seq)
	if kind == contract.KindEvent {
		var e contract.Event
		_ = json.Unmarshal(m.Payload, &e)
		r.events = append(r.events, e)
	}
	for _, rd := range hdr.Readings {
		k := key{rd.Sensor, rd.TS}
		if g, dup := r.readings[k]; dup {
			r.fail("reading %s@%d arrived in seq %d and again in new seq %d", rd.Sensor, rd.TS, g.seq, hdr.Seq)
			continue
		}
		if rd.Value == nil {
			r.fail("reading %s@%d is a fault: %s", rd.Sensor, rd.TS, rd.Error)
			continue
		}
		if r.site != nil {
			if err := r.site.checkValue(rd.TS, *rd.Value); err != nil {
				r.fail("reading %s@%d: %v", rd.Sensor, rd.TS, err)
			}
		}
		r.readings[k] = got{value: *rd.Value, seq: hdr.Seq, historical: hdr.Historical}
	}
}

// check fails the test with the contract violations seen so far.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) > 0 {
		t.Fatalf("subscriber saw %d contract violation(s):\n%s", len(r.errs), strings.Join(r.errs, "\n"))
	}
}

// snapshot returns a copy of the readings received so far.
func (r *recorder) snapshot() map[key]got {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[key]got, len(r.readings))
	for k, v := range r.readings {
		out[k] = v
	}
	return out
}

func (r *recorder) eventsOf(typ string) []contract.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []contract.Event
	for _, e := range r.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// until polls cond until it holds, failing on a contract violation or
// after the wait.
func (r *recorder) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		r.check(t)
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			n, ms, st := len(r.readings), fmt.Sprint(r.maxSeq), fmt.Sprint(r.statuses)
			r.mu.Unlock()
			t.Fatalf("timed out waiting for %s (%d readings, max seq %s, statuses %s)", what, n, ms, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// perSensor returns each sensor's received sample times, sorted.
func perSensor(rs map[key]got) map[string][]int64 {
	out := map[string][]int64{}
	for k := range rs {
		out[k.sensor] = append(out[k.sensor], k.ts)
	}
	for _, v := range out {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	}
	return out
}

// fileReadings opens a stopped agent's buffer file read-only (as a
// technician would), checks its structure (bbolt's full consistency check)
// and returns every reading it holds, pending or in the outbox. It reads
// the layout documented in internal/store: buckets "items/<stream>"
// (value: 8-byte ts + reading JSON) and "outbox/<stream>" (value: 12-byte
// header + message payload).
func fileReadings(t *testing.T, path string) map[key]bool {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("buffer file %s does not open: %v", path, err)
	}
	defer db.Close()
	out := map[key]bool{}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("consistency check: %w", err)
		}
		if b := tx.Bucket([]byte("items/telemetry")); b != nil {
			if err := b.ForEach(func(k, v []byte) error {
				var rd contract.Reading
				if err := json.Unmarshal(v[8:], &rd); err != nil {
					return fmt.Errorf("item %d: %w", binary.BigEndian.Uint64(k), err)
				}
				out[key{rd.Sensor, rd.TS}] = true
				return nil
			}); err != nil {
				return err
			}
		}
		if b := tx.Bucket([]byte("outbox/telemetry")); b != nil {
			return b.ForEach(func(k, v []byte) error {
				var m struct {
					Readings []contract.Reading `json:"readings"`
				}
				if err := json.Unmarshal(v[12:], &m); err != nil {
					return fmt.Errorf("outbox seq %d: %w", binary.BigEndian.Uint64(k), err)
				}
				for _, rd := range m.Readings {
					out[key{rd.Sensor, rd.TS}] = true
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("buffer file %s: %v", path, err)
	}
	return out
}

// withoutMsg drops the log lines carrying msg (repetitive ones).
func withoutMsg(log, msg string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `"msg":"`+msg+`"`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
