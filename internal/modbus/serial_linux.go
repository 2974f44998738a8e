package modbus

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hazmon/hazmon/internal/config"
)

// Serial line defaults applied when a config.Bus leaves them zero (the
// config loader normally fills them): 9600 baud 8E1 is the default of the
// Modbus over Serial Line spec v1.02 §2.5.1.
const (
	DefaultBaud     = 9600
	DefaultDataBits = 8
	DefaultParity   = "E"
	DefaultStopBits = 1
)

// SerialPort is an RS-485/RS-232 serial port opened by OpenSerial: a
// non-blocking tty file descriptor in raw mode, driven through Go's
// runtime poller, so every Read and Write ends at its deadline whatever
// the line or another process does (a byte taken by another reader of
// the same device costs a timeout, never a blocked goroutine). It is held
// exclusively (flock and TIOCEXCL) until Close.
//
// Read, Write and the deadline setters are for one goroutine at a time;
// Close may be called from any goroutine and makes a Read or Write in
// progress return at once with an error wrapping os.ErrClosed.
type SerialPort struct {
	f      *os.File
	fd     int // f's descriptor, for ioctls on the hot path (no allocation)
	device string
	line   bool // a real line (false: a pseudo-terminal, which has no line speed)
	closed atomic.Bool
}

// portInUseError is the failure to open a device another process holds.
type portInUseError struct{ device string }

func (e *portInUseError) Error() string {
	return "serial port " + e.device + " is in use by another process (the running agent?)"
}

// Is makes the error match ErrPortInUse and ErrBusDown.
func (e *portInUseError) Is(target error) bool { return target == ErrPortInUse || target == ErrBusDown }

// OpenSerial opens the RTU bus's serial device exclusively with its baud
// rate (1200..115200), data bits (7 or 8), parity (N, E or O) and stop
// bits (1 or 2); zero values take the Default* line settings.
//
// The device is locked with flock(LOCK_EX|LOCK_NB) before anything else
// touches it, then marked TIOCEXCL (further opens by unprivileged
// processes fail with EBUSY): a second open by hazmon (the agent, scan or
// probe) of a device already open fails at once with an error wrapping
// ErrPortInUse and ErrBusDown, and the owner's line settings are left
// alone. Other errors wrap ErrBusDown.
func OpenSerial(bus config.Bus) (*SerialPort, error) {
	dev := bus.Device
	speed, cflag, err := lineFlags(bus)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dev, err)
	}
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, &portInUseError{device: dev}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrBusDown, dev, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &portInUseError{device: dev}
		}
		return nil, fmt.Errorf("%w: lock %s: %v", ErrBusDown, dev, err)
	}
	if err := setRaw(fd, speed, cflag); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s: %v", ErrBusDown, dev, err)
	}
	_ = unix.IoctlSetInt(fd, unix.TIOCEXCL, 0)            // best effort: root may still open it
	_ = unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH) // nothing from before us
	p := &SerialPort{fd: fd, device: dev, line: !isPTY(fd)}
	// A non-blocking descriptor gives a pollable *os.File: deadlines work
	// and Close wakes a blocked Read.
	p.f = os.NewFile(uintptr(fd), dev)
	if p.f == nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: open %s: bad descriptor", ErrBusDown, dev)
	}
	return p, nil
}

// lineFlags returns the termios speed and the c_cflag bits of the bus's
// line settings.
func lineFlags(bus config.Bus) (speed, cflag uint32, err error) {
	baud := bus.Baud
	if baud == 0 {
		baud = DefaultBaud
	}
	speed, ok := map[int]uint32{1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
		19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600, 115200: unix.B115200}[baud]
	if !ok {
		return 0, 0, fmt.Errorf("baud %d (want 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200)", baud)
	}
	switch bus.DataBits {
	case 0, 8:
		cflag = unix.CS8
	case 7:
		cflag = unix.CS7
	default:
		return 0, 0, fmt.Errorf("data bits %d (want 7 or 8)", bus.DataBits)
	}
	parity := bus.Parity
	if parity == "" {
		parity = DefaultParity
	}
	switch strings.ToUpper(parity) {
	case "N":
	case "E":
		cflag |= unix.PARENB
	case "O":
		cflag |= unix.PARENB | unix.PARODD
	default:
		return 0, 0, fmt.Errorf("parity %q (want N, E or O)", bus.Parity)
	}
	switch bus.StopBits {
	case 0, 1:
	case 2:
		cflag |= unix.CSTOPB
	default:
		return 0, 0, fmt.Errorf("stop bits %d (want 1 or 2)", bus.StopBits)
	}
	return speed, cflag, nil
}

// setRaw puts the tty in raw mode (like cfmakeraw): no echo, no line
// editing, no flow control, no character translation, receiver on,
// modem lines ignored. VMIN=1, VTIME=0: on the non-blocking descriptor a
// read with nothing to read fails with EAGAIN (the runtime poller then
// waits up to the deadline) instead of returning 0, which would read as
// end of file.
func setRaw(fd int, speed, cflag uint32) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("not a serial port (get termios: %v)", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL |
		unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | unix.CBAUD | unix.CRTSCTS
	t.Cflag |= cflag | unix.CREAD | unix.CLOCAL | speed
	if cflag&unix.PARENB != 0 {
		t.Iflag |= unix.INPCK // bytes with a parity error arrive as NUL, and fail the CRC
	}
	t.Ispeed, t.Ospeed = speed, speed
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set termios: %v", err)
	}
	return nil
}

// isPTY reports whether fd is a pseudo-terminal (Unix98 pty slaves have
// majors 136..143, the BSD-style ones 2 and 3, /dev/ptmx is 5:2).
func isPTY(fd int) bool {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false
	}
	major, minor := unix.Major(st.Rdev), unix.Minor(st.Rdev)
	return major >= 136 && major <= 143 || major == 2 || major == 3 || major == 5 && minor == 2
}

// Device returns the path the port was opened with.
func (p *SerialPort) Device() string { return p.device }

// HasLine reports whether the port drives a real line with a baud rate:
// false for a pseudo-terminal (socat, ser2net-style bridges), which
// delivers a write at once.
func (p *SerialPort) HasLine() bool { return p.line }

// Read reads received bytes; it fails with os.ErrDeadlineExceeded at the
// read deadline and with os.ErrClosed after Close.
func (p *SerialPort) Read(b []byte) (int, error) { return p.f.Read(b) }

// Write queues b for transmission; it fails with os.ErrDeadlineExceeded
// if the output queue does not take it by the write deadline.
func (p *SerialPort) Write(b []byte) (int, error) { return p.f.Write(b) }

// SetReadDeadline bounds the following Reads (zero: no bound).
func (p *SerialPort) SetReadDeadline(t time.Time) error { return p.f.SetReadDeadline(t) }

// SetWriteDeadline bounds the following Writes (zero: no bound).
func (p *SerialPort) SetWriteDeadline(t time.Time) error { return p.f.SetWriteDeadline(t) }

// Buffered returns how many received bytes wait to be read (TIOCINQ).
func (p *SerialPort) Buffered() (int, error) {
	if p.closed.Load() {
		return 0, os.ErrClosed
	}
	// Racing a Close on another goroutine, the descriptor may already be
	// reused: the ioctl only queries, and the next Read reports the close.
	return unix.IoctlGetInt(p.fd, unix.TIOCINQ)
}

func (p *SerialPort) control(fn func(fd int) error) error {
	sc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := sc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// Close releases the port (its lock and exclusive mode) and makes a Read
// or Write in progress on another goroutine return at once. Safe to call
// more than once and from any goroutine.
func (p *SerialPort) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Clear TIOCEXCL: a pty (or a tty held open elsewhere) keeps the flag
	// after our close and would refuse unprivileged opens.
	_ = p.control(func(fd int) error { return unix.IoctlSetInt(fd, unix.TIOCNXCL, 0) })
	return p.f.Close()
}
