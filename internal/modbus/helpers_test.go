package modbus

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/reading"
)

// scriptSlave is the slave end of a socat pty pair driven byte by byte by
// a test: it expects exact request frames and answers with exact frames
// (the bytes of the cases in the project's test catalogue).
type scriptSlave struct {
	t testing.TB
	f *os.File
}

// newScriptSlave returns the scripted slave and the client's device path.
func newScriptSlave(t testing.TB) (*scriptSlave, string) {
	t.Helper()
	slaveEnd, clientEnd := mbslavetest.PtyPair(t)
	f, err := mbslave.OpenPort(slaveEnd, 9600, 'N')
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &scriptSlave{t: t, f: f}, clientEnd
}

// expect reads exactly len(want) bytes within d and fails the test unless
// they equal want. It returns when the first byte arrived.
func (s *scriptSlave) expect(want []byte, d time.Duration) (first time.Time, err error) {
	if err := s.f.SetReadDeadline(time.Now().Add(d)); err != nil {
		return first, err
	}
	got := make([]byte, 0, len(want))
	buf := make([]byte, len(want))
	for len(got) < len(want) {
		n, err := s.f.Read(buf[:len(want)-len(got)])
		if n > 0 && len(got) == 0 {
			first = time.Now()
		}
		got = append(got, buf[:n]...)
		if err != nil {
			return first, err
		}
	}
	if !bytes.Equal(got, want) {
		return first, errors.New("request mismatch: got " + hexs(got) + ", want " + hexs(want))
	}
	return first, nil
}

// send writes b and returns the time the write completed.
func (s *scriptSlave) send(b []byte) (time.Time, error) {
	_, err := s.f.Write(b)
	return time.Now(), err
}

func hexs(b []byte) string {
	const digits = "0123456789ABCDEF"
	var out []byte
	for i, x := range b {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, digits[x>>4], digits[x&15])
	}
	return string(out)
}

// rtuClient opens dev with our RTU transporter under goburrow's RTU
// packager, as the poller does.
func rtuClient(t testing.TB, dev string, baud int, timeout time.Duration) (*gmodbus.RTUClientHandler, gmodbus.Client, *RTUTransporter) {
	t.Helper()
	bus := config.Bus{Name: "t", Protocol: "rtu", Device: dev, Baud: baud, Parity: "E", Timeout: config.Duration(timeout)}
	port, err := OpenSerial(bus)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewRTUTransporter(port, bus)
	t.Cleanup(func() { tr.Close() })
	h := gmodbus.NewRTUClientHandler(dev)
	return h, gmodbus.NewClient2(h, tr), tr
}

// fromHex parses "0A 81 02 B0 53".
func fromHex(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	var cur, nd int
	for _, c := range s + " " {
		switch {
		case c >= '0' && c <= '9':
			cur, nd = cur*16+int(c-'0'), nd+1
		case c >= 'A' && c <= 'F':
			cur, nd = cur*16+int(c-'A'+10), nd+1
		case c == ' ':
			if nd == 2 {
				out = append(out, byte(cur))
			} else if nd != 0 {
				t.Fatalf("bad hex %q", s)
			}
			cur, nd = 0, 0
		default:
			t.Fatalf("bad hex %q", s)
		}
	}
	return out
}

// lockedBuffer is a bytes.Buffer safe for a child process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sink collects the readings a poller emits.
type sink struct {
	mu sync.Mutex
	rs []reading.Reading
}

func (s *sink) emit(r reading.Reading) {
	s.mu.Lock()
	s.rs = append(s.rs, r)
	s.mu.Unlock()
}

func (s *sink) of(sensor string) []reading.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []reading.Reading
	for _, r := range s.rs {
		if r.Sensor == sensor {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls until cond holds on the sensor's readings or fails after d.
func (s *sink) waitFor(t testing.TB, sensor string, d time.Duration, what string, cond func([]reading.Reading) bool) []reading.Reading {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		rs := s.of(sensor)
		if cond(rs) {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("sensor %s: no %s within %v; readings: %+v", sensor, what, d, rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastValid(rs []reading.Reading) bool { return len(rs) > 0 && rs[len(rs)-1].Valid() }

// startPoller runs a poller until the test ends and checks that Run
// returns; opts are its Options (at most one).
func startPoller(t testing.TB, bus config.Bus, sensors []config.Sensor, opts ...Options) (*Poller, *sink) {
	t.Helper()
	s := &sink{}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	p, err := NewPoller(bus, sensors, s.emit, o)
	if err != nil {
		t.Fatal(err)
	}
	runPoller(t, p)
	return p, s
}

// runPoller runs p until the test ends and checks that Run returns.
func runPoller(t testing.TB, p *Poller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
	})
}

func f64(v float64) *float64 { return &v }

func ms(n int) config.Duration { return config.Duration(time.Duration(n) * time.Millisecond) }
