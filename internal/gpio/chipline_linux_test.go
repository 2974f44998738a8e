//go:build linux

package gpio

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// pipeLines stands in for the kernel: each request of the line is a pipe
// (its read end is the "line request"), so reads and waits go through the
// real ioctl and read paths, and the ioctl fails (ENOTTY) as a line whose
// request went bad would.
type pipeLines struct {
	mu    sync.Mutex
	flags []uint64
	w     *os.File // write end of the last request
	fail  error    // requests fail with this
}

func (p *pipeLines) request(_ string, _ int, flags uint64) (*os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flags = append(p.flags, flags)
	if p.fail != nil {
		return nil, p.fail
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.w = w
	return r, nil
}

func (p *pipeLines) writer() *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w
}

func newPipeLine(p *pipeLines, offset int) *ChipLine {
	return &ChipLine{GPIOLine: &gpioioctl.GPIOLine{}, chip: "/dev/gpiochip0", offset: offset, request: p.request}
}

// The uAPI v2 structures have the kernel's sizes on this architecture
// (run it on arm with GOARCH=arm go test -exec qemu-arm-static), and a
// request says what In asked.
func TestChipLine_RequestLayoutAndFlags(t *testing.T) {
	var req unix.GPIOV2LineRequest
	if size := (uintptr(unix.GPIO_V2_GET_LINE_IOCTL) >> 16) & 0x3fff; unsafe.Sizeof(req) != size {
		t.Fatalf("GPIOV2LineRequest is %d bytes, the ioctl says %d", unsafe.Sizeof(req), size)
	}
	if eventSize != 48 {
		t.Fatalf("edge event size %d, want 48", eventSize)
	}
	req = inputRequest(17, inputFlags(pgpio.PullUp, pgpio.BothEdges))
	if req.Offsets[0] != 17 || req.Num_lines != 1 || string(req.Consumer[:7]) != "hazmon\x00" {
		t.Fatalf("request %v lines %d consumer %q", req.Offsets[:2], req.Num_lines, req.Consumer[:8])
	}
	for _, tc := range []struct {
		pull pgpio.Pull
		edge pgpio.Edge
		want uint64
	}{
		{pgpio.PullUp, pgpio.BothEdges, lineFlagInput | lineFlagBiasPullUp | lineFlagEdgeRising | lineFlagEdgeFalling},
		{pgpio.PullDown, pgpio.NoEdge, lineFlagInput | lineFlagBiasPullDown},
		{pgpio.Float, pgpio.FallingEdge, lineFlagInput | lineFlagEdgeFalling},
		{pgpio.PullNoChange, pgpio.RisingEdge, lineFlagInput | lineFlagEdgeRising},
	} {
		if got := inputFlags(tc.pull, tc.edge); got != tc.want {
			t.Errorf("flags(%v, %v) = %#x, want %#x", tc.pull, tc.edge, got, tc.want)
		}
	}
}

// A read that fails is an error, never a level: before In, after Close,
// and when the line request's ioctl fails.
func TestChipLine_ReadErrorIsNotALevel(t *testing.T) {
	p := &pipeLines{}
	l := newPipeLine(p, 6)
	if _, err := l.ReadLevel(); !errors.Is(err, ErrNotRequested) {
		t.Fatalf("read before In: %v, want ErrNotRequested", err)
	}
	if err := l.In(pgpio.PullDown, pgpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	if l.Pull() != pgpio.PullDown {
		t.Errorf("pull %v", l.Pull())
	}
	// The kernel says ENOTTY (qemu-user, which does not pass unknown
	// ioctls through, ENOSYS): an errno either way.
	_, err := l.ReadLevel()
	var errno unix.Errno
	if !errors.As(err, &errno) || !strings.HasPrefix(err.Error(), "GPIO_V2_LINE_GET_VALUES_IOCTL: ") {
		t.Fatalf("read through a failing ioctl: %v, want GPIO_V2_LINE_GET_VALUES_IOCTL: errno", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadLevel(); !errors.Is(err, ErrNotRequested) {
		t.Fatalf("read after Close: %v, want ErrNotRequested", err)
	}
	p.fail = unix.EBUSY
	if err := l.In(pgpio.PullDown, pgpio.NoEdge); !errors.Is(err, unix.EBUSY) || !strings.HasPrefix(err.Error(), "request as input: ") {
		t.Fatalf("In on a busy line: %v", err)
	}
}

// WaitEdge: whole events are edges, the deadline is a timeout, a short or
// failed read is an error, Halt ends a pending wait at once.
func TestChipLine_WaitEdge(t *testing.T) {
	p := &pipeLines{}
	l := newPipeLine(p, 6)
	if _, err := l.WaitEdge(time.Millisecond); !errors.Is(err, ErrNotRequested) {
		t.Fatalf("wait before In: %v", err)
	}
	if err := l.In(pgpio.Float, pgpio.NoEdge); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitEdge(time.Millisecond); !errors.Is(err, ErrNotRequested) {
		t.Fatalf("wait without edge detection: %v", err)
	}
	if err := l.In(pgpio.Float, pgpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	w := p.writer()
	if _, err := w.Write(make([]byte, 2*eventSize)); err != nil {
		t.Fatal(err)
	}
	if edge, err := l.WaitEdge(time.Second); !edge || err != nil {
		t.Fatalf("two events: edge %v err %v", edge, err)
	}
	start := time.Now()
	if edge, err := l.WaitEdge(50 * time.Millisecond); edge || err != nil || time.Since(start) < 40*time.Millisecond {
		t.Fatalf("timeout: edge %v err %v after %v", edge, err, time.Since(start))
	}
	if _, err := w.Write(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if edge, err := l.WaitEdge(time.Second); edge || err == nil || !strings.Contains(err.Error(), "10 bytes") {
		t.Fatalf("short event: edge %v err %v", edge, err)
	}

	done := make(chan error, 1)
	go func() { _, err := l.WaitEdge(30 * time.Second); done <- err }()
	time.Sleep(20 * time.Millisecond) // let the wait start; a Halt before it works too
	if err := l.Halt(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("halted wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Halt did not end the pending wait")
	}
	if edge, err := l.WaitEdge(30 * time.Second); edge || err != nil {
		t.Fatalf("wait after Halt: %v %v", edge, err)
	}

	// The kernel side going away (EOF) is an error, not a timeout.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.In(pgpio.Float, pgpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	_ = p.writer().Close()
	if edge, err := l.WaitEdge(time.Second); edge || err == nil {
		t.Fatalf("wait on a closed request: %v %v", edge, err)
	}
}

// An Input on a line whose reads fail gives fault readings and nothing
// else, active high or low (periph's Read would give Low: "running" for
// an active-low contact); it requests the line with its pull and both
// edges, retries, and releases the line when Run returns.
func TestInput_ChipLineReadErrorGivesFaultsOnly(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		t.Run(map[bool]string{false: "active_high", true: "active_low"}[activeLow], func(t *testing.T) {
			p := &pipeLines{}
			l := newPipeLine(p, 6)
			s := config.Sensor{ID: "FAN-1", Type: "digital", Interval: config.Duration(50 * time.Millisecond),
				GPIO: &config.GPIOIn{Chip: "gpiochip0", Line: 6, Pull: "up", ActiveLow: activeLow}}
			c := newCollector()
			in, stop := runInput(t, s, PinMap{{"gpiochip0", 6}: l}, c)
			for range 3 {
				r := c.next(t, "a reading", func(reading.Reading) bool { return true })
				if r.Status != reading.StatusFault || r.Valid() ||
					!strings.HasPrefix(r.Err, "gpio chip gpiochip0 line 6: read: GPIO_V2_LINE_GET_VALUES_IOCTL: ") {
					t.Fatalf("reading %+v, want a read fault", r)
				}
			}
			stop()
			p.mu.Lock()
			n, first := len(p.flags), p.flags[0]
			p.mu.Unlock()
			if n < 2 || first != lineFlagInput|lineFlagBiasPullUp|lineFlagEdgeRising|lineFlagEdgeFalling {
				t.Errorf("%d requests, first flags %#x: want retries, input with pull-up and both edges", n, first)
			}
			l.mu.Lock()
			released := l.f == nil
			l.mu.Unlock()
			if !released {
				t.Error("line request still held after Run returned")
			}
			if in.LastRead().IsZero() {
				t.Error("LastRead zero after Run went round its loop")
			}
		})
	}
}
