package gpio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"
)

// EdgeWaiter is implemented by pins that can report a failed wait for an
// edge. periph's gpio.PinIn.WaitForEdge cannot (gpioioctl logs the error
// and returns false, as for a timeout); Input treats a failed WaitEdge
// like a failed read: a fault reading, then the line is configured afresh.
type EdgeWaiter interface {
	// WaitEdge waits up to timeout (<= 0: no limit) for an edge. It
	// returns edge = false, err = nil on a timeout or after Halt.
	WaitEdge(timeout time.Duration) (edge bool, err error)
}

// ErrNotRequested is wrapped by the errors of a ChipLine read or wait
// before In (or after Close), and of a wait on a line requested without
// edge detection.
var ErrNotRequested = errors.New("line not requested as an input")

// eventBufLines is how many edge events one WaitEdge reads at most (the
// kernel queues 16 per line by default).
const eventBufLines = 16

// ChipLine is a GPIO line found by Host. As an output it is periph's
// gpioioctl line (Out and the rest of gpio.PinIO are the embedded
// GPIOLine's). As an input, In requests the line from the GPIO character
// device itself (uAPI v2: GPIO_V2_GET_LINE_IOCTL, input, bias from the
// pull, edge detection) so that a failed read or wait is an error
// (ReadLevel, WaitEdge), never a level: periph's Read returns Low after an
// ioctl error, which an active-low input reads as "fan running" or "power
// present". Each Lookup.Line call returns a ChipLine of its own; Close
// releases its input request. Its methods are safe for concurrent use.
type ChipLine struct {
	*gpioioctl.GPIOLine
	chip   string // character device, e.g. /dev/gpiochip0
	offset int    // line offset on the chip
	// request requests the line as an input (requestInput; tests inject
	// a pipe in place of the kernel's line request).
	request func(chip string, offset int, flags uint64) (*os.File, error)

	mu     sync.Mutex
	f      *os.File // the input request (nil: none)
	pull   pgpio.Pull
	edges  bool
	halted bool
}

// newChipLine wraps l of the chip whose character device is chip.
func newChipLine(l *gpioioctl.GPIOLine, chip string) *ChipLine {
	return &ChipLine{GPIOLine: l, chip: chip, offset: l.Number(), request: requestInput}
}

// In requests the line as an input with pull (PullUp, PullDown; Float and
// PullNoChange leave the bias as it is, as periph does) and edge detection
// (NoEdge, RisingEdge, FallingEdge, BothEdges), releasing any earlier
// request first. Errors name the ioctl and wrap the errno (EBUSY: another
// process holds the line; EINVAL or ENXIO: no edge detection on it).
func (l *ChipLine) In(pull pgpio.Pull, edge pgpio.Edge) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeLocked()
	f, err := l.request(l.chip, l.offset, inputFlags(pull, edge))
	if err != nil {
		return fmt.Errorf("request as input: %w", err)
	}
	l.f, l.pull, l.edges = f, pull, edge != pgpio.NoEdge
	return nil
}

// ReadLevel reads the line's level through its input request. An error
// (ErrNotRequested, or the ioctl's errno) comes with Low, which the caller
// must not take for a level.
func (l *ChipLine) ReadLevel() (pgpio.Level, error) {
	l.mu.Lock()
	f := l.f
	l.mu.Unlock()
	if f == nil {
		return pgpio.Low, ErrNotRequested
	}
	high, err := readValue(f)
	if err != nil {
		return pgpio.Low, err
	}
	return pgpio.Level(high), nil
}

// Read implements gpio.PinIn for callers that cannot take an error: it
// returns Low when ReadLevel fails. Input uses ReadLevel.
func (l *ChipLine) Read() pgpio.Level {
	v, _ := l.ReadLevel()
	return v
}

// WaitEdge implements EdgeWaiter: it waits for edge events on the input
// request and reads the pending ones (up to 16). A wait on a line
// requested without edges wraps ErrNotRequested; a failed or short read
// of the events is an error.
func (l *ChipLine) WaitEdge(timeout time.Duration) (bool, error) {
	l.mu.Lock()
	f, edges, halted := l.f, l.edges, l.halted
	if f == nil || !edges {
		l.mu.Unlock()
		return false, fmt.Errorf("%w with edge detection", ErrNotRequested)
	}
	if halted {
		l.mu.Unlock()
		return false, nil
	}
	var dl time.Time
	if timeout > 0 {
		dl = time.Now().Add(timeout)
	}
	err := f.SetReadDeadline(dl) // under mu: a Halt cannot slip in between
	l.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("set read deadline: %w", err)
	}
	return readEvents(f, make([]byte, eventBufLines*eventSize))
}

// readEvents reads whole edge events from f into buf: true after at least
// one, false, nil at the read deadline (a timeout or Halt).
func readEvents(f *os.File, buf []byte) (bool, error) {
	n, err := f.Read(buf)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read edge event: %w", err)
	case n == 0 || n%eventSize != 0:
		return false, fmt.Errorf("read edge event: %d bytes, not a whole number of %d-byte events", n, eventSize)
	}
	return true, nil
}

// WaitForEdge implements gpio.PinIn: WaitEdge without its error.
func (l *ChipLine) WaitForEdge(timeout time.Duration) bool {
	edge, _ := l.WaitEdge(timeout)
	return edge
}

// Halt interrupts a pending WaitEdge and makes later ones return at once
// (false, nil) until Close.
func (l *ChipLine) Halt() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.halted = true
	if l.f != nil {
		return l.f.SetReadDeadline(time.Unix(1, 0))
	}
	return nil
}

// Pull returns the pull of the input request (PullNoChange before In).
func (l *ChipLine) Pull() pgpio.Pull {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return pgpio.PullNoChange
	}
	return l.pull
}

// Close releases the input request (the line is free for another
// process; a pending WaitEdge returns an error) and clears Halt. It does
// not touch periph's output request of the line.
func (l *ChipLine) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.closeLocked()
	l.halted = false
	return err
}

func (l *ChipLine) closeLocked() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f, l.edges = nil, false
	return err
}

var (
	_ pgpio.PinIO = (*ChipLine)(nil)
	_ LevelReader = (*ChipLine)(nil)
	_ EdgeWaiter  = (*ChipLine)(nil)
)
