// Package e2e runs the hazmon agent as a real process (the binary built
// once in TestMain) against a Modbus TCP slave (mbslave) and a real
// Mosquitto (brokertest), and checks what a bureau subscriber receives:
// the store-and-forward guarantees of issue 4 (outages, kill -9, buffer
// cap, TLS). Every received payload is validated against the contract.
package e2e

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

const (
	site   = "site-e2e"
	gateID = "gw-e2e"
	topics = "hazmon/v1/" + site + "/" + gateID + "/#"
	wait   = 90 * time.Second // generous: 2 shared cores
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

// counterSite is a Modbus TCP slave (mbslave) whose sensors, one per unit
// id, read holding register 0. A read hook on the slave's connections runs
// when a request has fully arrived, before the slave executes it: it numbers
// the unit's reads 1, 2, 3, ..., records the wall-clock time it saw read n
// and puts n into the register. A reading's value therefore names the one
// request it was read by, and when the slave served it. The agent takes the
// sample time before it sends the request, on the same clock, so a reading
// stamped ts with value n must have ts <= served(n), and only a little
// before: that proves the published ts is the original sample time,
// however loaded the machine is (no ticker whose lag could be mistaken for
// a wrong ts). The numbers also let the tests account for every read
// served, one by one.
type counterSite struct {
	bank  *mbslave.Bank
	addr  string
	units int

	mu      sync.Mutex
	served  map[uint8][]time.Time // per unit: served[u][n-1] is when read n arrived
	hookErr string                // the first thing the hook could not handle
}

func startSite(t *testing.T, units int) *counterSite {
	t.Helper()
	b := mbslave.NewBank()
	for u := 1; u <= units; u++ {
		b.AddUnit(uint8(u))
	}
	s := &counterSite{bank: b, units: units, served: map[uint8][]time.Time{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("slave: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mbslave.ServeTCP(ctx, hookListener{Listener: ln, site: s}, b) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("slave: %v", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.hookErr != "" {
			t.Errorf("slave read hook: %s", s.hookErr)
		}
	})
	return s
}

// arrived is the read hook: a request PDU for unit has fully arrived.
func (s *counterSite) arrived(unit uint8, pdu []byte) {
	if len(pdu) == 0 || pdu[0] != mbslave.FuncReadHoldingRegisters {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.served[unit]) + 1
	if n > 0xFFFF {
		if s.hookErr == "" {
			s.hookErr = fmt.Sprintf("unit %d: more than 65535 reads, the register cannot number them", unit)
		}
		return
	}
	s.served[unit] = append(s.served[unit], time.Now())
	s.bank.SetHolding(unit, 0, uint16(n))
}

// requests returns the reads served over all units.
func (s *counterSite) requests() int {
	n := 0
	for u := 1; u <= s.units; u++ {
		n += s.bank.Requests(uint8(u))
	}
	return n
}

// servedAt returns when the slave served read n of unit.
func (s *counterSite) servedAt(unit uint8, n int) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 1 || n > len(s.served[unit]) {
		return time.Time{}, false
	}
	return s.served[unit][n-1], true
}

// maxSampleLag bounds the time from a reading's sample time (taken just
// before the request is sent) to the slave seeing the request: generous,
// as a loaded 2-core machine may not run the agent for a while.
const maxSampleLag = 3 * time.Second

// req names one read served: unit id and its number.
type req struct {
	unit uint8
	n    int
}

// unitOf returns the unit id of a sensor named "<prefix>-<unit>".
func unitOf(sensor string) (uint8, bool) {
	i := strings.LastIndexByte(sensor, '-')
	u, err := strconv.ParseUint(sensor[i+1:], 10, 8)
	return uint8(u), i >= 0 && err == nil
}

// checkValue checks that the reading sensor@ts with value v was read by a
// request the slave served at or after ts (same wall clock), within
// maxSampleLag, and returns that request.
func (s *counterSite) checkValue(sensor string, ts int64, v float64) (req, error) {
	u, ok := unitOf(sensor)
	if !ok || v != math.Trunc(v) {
		return req{}, fmt.Errorf("value %v of %s names no request", v, sensor)
	}
	r := req{u, int(v)}
	at, ok := s.servedAt(u, r.n)
	if !ok {
		return r, fmt.Errorf("value %v: the slave never served read %d of unit %d", v, r.n, u)
	}
	switch d := at.Sub(time.UnixMilli(ts)); {
	case d < 0:
		return r, fmt.Errorf("value %v was served at %s, %v before its ts %d: the ts is later than the read, not the sample time",
			v, at.Format(time.StampMilli), -d, ts)
	case d > maxSampleLag:
		return r, fmt.Errorf("value %v was served at %s, %v after its ts %d (at most %v): not the original sample time",
			v, at.Format(time.StampMilli), d, ts, maxSampleLag)
	}
	return r, nil
}

// hookListener hands out connections that call site.arrived for every
// request frame, before mbslave (which reads exactly one frame at a time)
// gets to execute it.
type hookListener struct {
	net.Listener
	site *counterSite
}

func (l hookListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &hookConn{Conn: c, site: l.site}, nil
}

// hookConn follows the Modbus TCP frames read through it (MBAP header:
// transaction id, protocol id, length, unit id; then the PDU).
type hookConn struct {
	net.Conn
	site *counterSite
	buf  []byte
}

func (c *hookConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.buf = append(c.buf, p[:n]...)
	for len(c.buf) >= 7 {
		l := int(binary.BigEndian.Uint16(c.buf[4:]))
		if l < 2 || l > 254 {
			c.buf = nil // mbslave drops such a connection
			break
		}
		if len(c.buf) < 6+l {
			break
		}
		c.site.arrived(c.buf[6], c.buf[7:6+l])
		c.buf = c.buf[6+l:]
	}
	return n, err
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
	BusTimeout  string // Modbus transaction timeout; default 1s
	Telemetry   string // mqtt.telemetry; "" leaves the default (v1)
	Scale       string // sensors' scale; "" leaves the default (1)
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
	if c.Telemetry != "" {
		fmt.Fprintf(&b, "  telemetry: %s\n", c.Telemetry)
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
	fmt.Fprintf(&b, "buses:\n  - {name: site, protocol: tcp, address: %q, timeout: %s}\nsensors:\n", c.SlaveAddr, or(c.BusTimeout, "1s"))
	for u := 1; u <= c.Sensors; u++ {
		scale := ""
		if c.Scale != "" {
			scale = ", scale: " + c.Scale
		}
		fmt.Fprintf(&b, "  - {id: %s-%d, type: flow, bus: site, slave: %d, table: holding, address: 0, format: uint16, unit: %q, interval: %s, range: [0, 65535]%s}\n",
			or(c.SensorName, "FT"), u, u, or(c.Unit, "m3/h"), or(c.Interval, "100ms"), scale)
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

// got is what the subscriber received (or the file holds) for one reading.
type got struct {
	value      float64 // meaningless for a fault
	fault      string  // the fault's error; "" for a value
	seq        uint64
	historical bool
}

// recorder follows a bureau subscriber and enforces the contract on every
// message as it arrives: schema-valid; per seq stream, a seq not above the
// highest seen must be an exact repeat (same payload) of a message already
// received; a reading (sensor, ts) arrives in one seq only; with a site, a
// value was read by a request served at or just after its ts, and no
// request's value arrives as two readings. A fault reading (value null) is
// a reading the agent sampled like any other: it is recorded and counted
// (a poll that timed out on a loaded machine is not a contract violation).
type recorder struct {
	site *counterSite
	mu   sync.Mutex
	errs []string

	maxSeq   map[string]uint64
	bySeq    map[string]map[uint64][]byte
	readings map[key]got
	byReq    map[req]key
	faults   int
	events   []contract.Event
	statuses []string
	repeats  int
	msgs     int
	// The wall clock against the monotonic one since the start: a step
	// back makes two reads of a sensor share a ts (see add).
	start              time.Time
	minDrift, maxDrift time.Duration

	stop chan struct{}
	done chan struct{}
}

func newRecorder(t *testing.T, b *brokertest.Broker, clientID string, s *counterSite) *recorder {
	t.Helper()
	ch := b.Subscribe(t, clientID, topics)
	r := &recorder{site: s, maxSeq: map[string]uint64{}, bySeq: map[string]map[uint64][]byte{},
		readings: map[key]got{}, byReq: map[req]key{}, stop: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
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
	drift := time.Now().Round(0).Sub(r.start.Round(0)) - time.Since(r.start)
	r.minDrift, r.maxDrift = min(r.minDrift, drift), max(r.maxDrift, drift)
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
	}
	if contract.Retained(kind) { // retained state, outside the seq streams
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
			r.fail("reading %s@%d arrived in seq %d (value %v, fault %q) and again in new seq %d (value %v, fault %q); the wall clock moved %v..%v against the monotonic one since the start:\n%s",
				rd.Sensor, rd.TS, g.seq, g.value, g.fault, hdr.Seq, valueOf(rd.Value), rd.Error, r.minDrift, r.maxDrift, m.Payload)
			continue
		}
		if rd.Value == nil {
			if rd.Error == "" || rd.Status != "fault" {
				r.fail("reading %s@%d: value null with status %q and error %q", rd.Sensor, rd.TS, rd.Status, rd.Error)
			}
			r.faults++
			r.readings[k] = got{fault: rd.Error, seq: hdr.Seq, historical: hdr.Historical}
			continue
		}
		if r.site != nil {
			q, err := r.site.checkValue(rd.Sensor, rd.TS, *rd.Value)
			if err != nil {
				r.fail("reading %s@%d: %v", rd.Sensor, rd.TS, err)
			} else if prev, dup := r.byReq[q]; dup {
				r.fail("reading %s@%d carries the value of read %d of unit %d, as did %s@%d", rd.Sensor, rd.TS, q.n, q.unit, prev.sensor, prev.ts)
			}
			r.byReq[q] = k
		}
		r.readings[k] = got{value: *rd.Value, seq: hdr.Seq, historical: hdr.Historical}
	}
}

func valueOf(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
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
// and returns every reading it holds, pending or in the outbox (its value
// or fault error). It reads
// the layout documented in internal/store: buckets "items/<stream>"
// (value: 8-byte ts + reading JSON) and "outbox/<stream>" (value: 12-byte
// header + message payload; when the header's record count has its top
// bit set, the message's 8-byte first record number and a 4-byte CRC-32,
// then the payload zlib-compressed).
func fileReadings(t *testing.T, path string) map[key]got {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("buffer file %s does not open: %v", path, err)
	}
	defer db.Close()
	out := map[key]got{}
	add := func(rd contract.Reading) {
		g := got{fault: or(rd.Error, "fault without error")}
		if rd.Value != nil {
			g = got{value: *rd.Value}
		}
		out[key{rd.Sensor, rd.TS}] = g
	}
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
				add(rd)
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
				payload := v[12:]
				if binary.BigEndian.Uint32(v[8:])&(1<<31) != 0 {
					zr, err := zlib.NewReader(bytes.NewReader(v[24:]))
					if err == nil {
						payload, err = io.ReadAll(zr)
					}
					if err != nil {
						return fmt.Errorf("outbox seq %d: compressed payload: %w", binary.BigEndian.Uint64(k), err)
					}
				}
				if err := json.Unmarshal(payload, &m); err != nil {
					return fmt.Errorf("outbox seq %d: %w", binary.BigEndian.Uint64(k), err)
				}
				for _, rd := range m.Readings {
					add(rd)
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

// ledger is what became of every read the slave served, found read by
// read through the numbers the site put in the register.
type ledger struct {
	served    int // reads the slave served
	delivered int // reads whose value the subscriber received
	inFile    int // reads whose value is still in the buffer file
	timedOut  int // reads the agent reported as a fault reading instead (same sensor, served after the fault's ts and before its next reading)
	faults    int // fault readings received or in the file
	// lost are the other reads: their readings never arrived and are not
	// in the file, so data_loss events must count them.
	lost []req
	errs []string // values that name no served read or were not read at their ts
}

// ledger reconciles the reads served with the readings received and left
// in the file. A value that names no served read, or was not read at its
// ts, is listed in errs.
func (s *counterSite) ledger(received, left map[key]got) ledger {
	var l ledger
	seen := map[req]bool{}
	var faults []key
	next := map[key]int64{} // a reading's sensor's next sample time
	for _, src := range []map[key]got{received, left} {
		for k, g := range src {
			if g.fault != "" {
				faults = append(faults, k)
				continue
			}
			q, err := s.checkValue(k.sensor, k.ts, g.value)
			if err != nil {
				l.errs = append(l.errs, fmt.Sprintf("reading %s@%d: %v", k.sensor, k.ts, err))
				continue
			}
			if seen[q] {
				continue // in flight at the stop: received and still in the outbox
			}
			seen[q] = true
			if _, ok := received[k]; ok {
				l.delivered++
			} else {
				l.inFile++
			}
		}
	}
	all := map[key]got{}
	for k, g := range left {
		all[k] = g
	}
	for k, g := range received {
		all[k] = g
	}
	for sensor, ts := range perSensor(all) {
		for i := 0; i+1 < len(ts); i++ {
			next[key{sensor, ts[i]}] = ts[i+1]
		}
	}
	l.faults = len(faults)
	sort.Slice(faults, func(i, j int) bool { return faults[i].ts < faults[j].ts })
	s.mu.Lock()
	defer s.mu.Unlock()
	matched := map[req]bool{}
	for _, f := range faults {
		u, ok := unitOf(f.sensor)
		if !ok {
			continue
		}
		from, to := time.UnixMilli(f.ts), time.UnixMilli(f.ts).Add(maxSampleLag)
		if nx, ok := next[f]; ok && time.UnixMilli(nx).Before(to) {
			to = time.UnixMilli(nx)
		}
		for i, at := range s.served[u] {
			q := req{u, i + 1}
			if !seen[q] && !matched[q] && !at.Before(from) && at.Before(to) {
				matched[q] = true
				l.timedOut++
				break
			}
		}
	}
	for u := 1; u <= s.units; u++ {
		for i := range s.served[uint8(u)] {
			l.served++
			if q := (req{uint8(u), i + 1}); !seen[q] && !matched[q] {
				l.lost = append(l.lost, q)
			}
		}
	}
	return l
}

// busTrouble reports whether the agent logged a failed Modbus transaction
// or link (its fault readings then may also have been evicted unseen). The
// agent must log at debug level for the per-slave timeouts.
func (a *agentProc) busTrouble() bool {
	for _, msg := range []string{"slave not answering, backing off", "bus link failed, reopening", "bus down, reconnecting with backoff"} {
		if len(a.logLines(msg)) > 0 {
			return true
		}
	}
	return false
}

// eventually polls cond for up to 30 s and then 500 ms more (whatever is
// still on its way to the subscriber shows up now): after a stop, what
// the agent had acked may still be in the broker's queue for the
// subscriber. The caller then checks with exact numbers.
func eventually(cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
}

// faultBinary builds (once) the agent with the faultinject build tag,
// which can inject a panic into a goroutine (HAZMON_FAULT).
func faultBinary(t *testing.T) string {
	t.Helper()
	faultOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hazmon-e2e-fault-")
		if err != nil {
			faultErr = err
			return
		}
		faultBin = filepath.Join(dir, "hazmon")
		cmd := exec.Command("go", "build", "-tags", "faultinject", "-o", faultBin, "github.com/hazmon/hazmon/cmd/hazmon")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			faultErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if faultErr != nil {
		t.Fatalf("build the faultinject agent: %v", faultErr)
	}
	return faultBin
}

var (
	faultOnce sync.Once
	faultBin  string
	faultErr  error
)
