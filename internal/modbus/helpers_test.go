package modbus

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
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
