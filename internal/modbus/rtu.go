package modbus

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hazmon/hazmon/internal/config"
)

// Port is the serial line of an RTU bus. *SerialPort implements it; a
// test may pass another implementation with the same semantics.
type Port interface {
	io.ReadWriter
	// Close makes a Read or Write in progress return; safe from any goroutine.
	io.Closer
	// SetReadDeadline bounds the following Reads: a Read still waiting at
	// t fails with an error wrapping os.ErrDeadlineExceeded.
	SetReadDeadline(t time.Time) error
	// SetWriteDeadline bounds the following Writes likewise.
	SetWriteDeadline(t time.Time) error
	// Buffered returns how many received bytes wait to be read.
	Buffered() (int, error)
	// HasLine reports whether the port drives a real line at its baud
	// rate (false for a pseudo-terminal, which delivers writes at once).
	HasLine() bool
}

// Echo modes of an RTU bus (config key buses[].echo), for half-duplex
// RS-485 adapters that may receive what they transmit.
const (
	// EchoAuto (the default) skips a copy of the request received ahead
	// of the reply and learns from reads whether the adapter echoes. For
	// FC05/FC06, whose normal reply is a copy of the request, a single
	// copy followed by silence is the reply and two copies are echo and
	// reply, until the reads have shown whether the adapter echoes.
	EchoAuto = "auto"
	// EchoOn: the adapter always echoes; the echo is skipped, and a
	// missing or different echo (a collision on the line) fails the
	// transaction with ErrFrame.
	EchoOn = "on"
	// EchoOff: no echo is expected; a copy of the request is taken for
	// what it looks like.
	EchoOff = "off"
)

// Line timing of an RTU bus.
const (
	// DefaultTurnaround is how long the line must stay silent, after a
	// transaction with a slave failed (timeout, damaged or unexpected
	// frame) and after bytes that arrived unasked, before the next
	// request to that slave goes out (config key buses[].turnaround), so
	// that a late reply is drained instead of read as the next answer.
	// It is the turnaround delay of Modbus over Serial Line v1.02 §2.4.1
	// (typically 100 to 200 ms); never less than t3.5.
	DefaultTurnaround = 100 * time.Millisecond
	// DupGuard is the least silence after a good reply before the next
	// request (see SettleTime): a repeater or gateway that sends a reply
	// twice does so within a few milliseconds.
	DupGuard = 5 * time.Millisecond
	// dupForget is how many transactions in a row without a duplicate
	// make a bus that sent one go back to SettleTime.
	dupForget = 256
)

// SettleTime is how long the line must be silent after a good reply
// before the next request goes out: t3.5 plus one character time (the
// first byte of a frame that follows within t3.5), at least DupGuard
// (5.16 ms at 9600 baud, 5 ms from 19200 up). A second copy of the reply
// arriving in that time is drained (and a different second reply fails
// the transaction), so it cannot answer the next request; it costs about
// 2.5 % of a 9600-baud line's throughput over the bare t3.5.
func SettleTime(baud int) time.Duration {
	return max(FrameGap(baud)+CharTime(baud), DupGuard)
}

// turnaround is the bus's turnaround allowance: config.Bus.Turnaround or
// DefaultTurnaround, never less than t3.5.
func turnaround(bus config.Bus) time.Duration {
	d := DefaultTurnaround
	if bus.Turnaround > 0 {
		d = bus.Turnaround.D()
	}
	return max(d, FrameGap(bus.Baud))
}

// CharTime is the time of one RTU character on the wire: 11 bits (start, 8
// data, parity or second stop, stop) at baud (Modbus over Serial Line
// v1.02 §2.5.1).
func CharTime(baud int) time.Duration {
	if baud <= 0 {
		baud = DefaultBaud
	}
	return time.Duration(11 * int64(time.Second) / int64(baud))
}

// FrameGap is t3.5, the silence that must separate two RTU frames: 3.5
// character times, fixed at 1.75 ms above 19200 baud (Modbus over Serial
// Line v1.02 §2.5.1.1). At 9600 baud it is 4.01 ms.
func FrameGap(baud int) time.Duration {
	if baud > 19200 {
		return 1750 * time.Microsecond
	}
	if baud <= 0 {
		baud = DefaultBaud
	}
	return time.Duration(35 * 11 * int64(time.Second) / int64(baud) / 10)
}

// RTUTransporter is a goburrow/modbus Transporter for Modbus RTU over a
// serial port. A reply is the answer to a request only if it has the
// request's slave id, function code (or its exception), the length the
// request implies and a good CRC, and arrived inside the request's
// window; a transaction ends by its deadline whatever the port does:
//
//   - Before a request the line must be quiet: silent for SettleTime since
//     the last frame (at least t3.5), and for the turnaround allowance
//     since the slave's last failed transaction or since any byte that
//     arrived unasked; what arrives meanwhile is read and discarded.
//   - On a real line (Port.HasLine) a frame of L bytes read before the
//     request's end on the wire + t3.5 + L character times cannot be the
//     answer (an adapter's echo, a late frame) and is skipped. A
//     pseudo-terminal has no line: there the window opens when the write
//     returns.
//   - The adapter's echo of the request is skipped (see EchoAuto).
//   - After a good reply the line must be silent for SettleTime before
//     Send returns: a duplicate of the reply is drained; a different
//     second reply makes the answer ambiguous (ErrFrame). Once a bus has
//     sent a duplicate, the settle time is twice the gap seen before the
//     copy plus 2 ms, at least twice SettleTime (at most the turnaround
//     allowance), until dupForget
//     transactions in a row come without one.
//
// Send is for one goroutine at a time (concurrent calls are serialised);
// Close may be called from any goroutine and makes a Send in progress
// return at once with an error wrapping ErrBusDown.
type RTUTransporter struct {
	port       Port
	line       bool
	gap        time.Duration
	char       time.Duration
	settle     time.Duration
	turnaround time.Duration
	echo       string
	closed     atomic.Bool

	mu      sync.Mutex
	timeout time.Duration
	lastRx  time.Time      // when the last byte was read
	lastTx  time.Time      // when our last request left the wire
	failed  [256]time.Time // per slave: when its last transaction failed (zero: it did not)
	echoes  int8           // EchoAuto: +1 the adapter echoes, -1 it does not, 0 not known yet
	clean   int            // EchoAuto: reads in a row without an echo while echoes is +1
	dupWait time.Duration  // settle time learnt from duplicates (0: none seen lately)
	noDup   int            // transactions since the last duplicate
	lastOK  bool           // the last transaction was answered
	rx      rxBuf
	reply   [rtuMaxADU]byte
}

const (
	rtuMaxADU       = 256 // max RTU frame, Modbus over Serial Line v1.02 §2.5.1.1
	rtuExceptionLen = 5   // slave, fc|0x80, code, CRC
	// echoUnlearn is how many reads in a row without an echo make
	// EchoAuto conclude that an adapter seen echoing no longer does.
	echoUnlearn = 3
)

// NewRTUTransporter returns a transporter over port with the bus's baud
// rate (for t3.5 and the reply window), timeout (from the end of the
// request to the end of the reply; 0: DefaultRTUTimeout), echo mode ("":
// EchoAuto) and turnaround allowance (0: DefaultTurnaround).
func NewRTUTransporter(port Port, bus config.Bus) *RTUTransporter {
	baud := bus.Baud
	if baud <= 0 {
		baud = DefaultBaud
	}
	timeout := bus.Timeout.D()
	if timeout <= 0 {
		timeout = DefaultRTUTimeout
	}
	echo := bus.Echo
	if echo == "" {
		echo = EchoAuto
	}
	b := bus
	b.Baud = baud
	return &RTUTransporter{port: port, line: port.HasLine(), gap: FrameGap(baud), char: CharTime(baud),
		settle: SettleTime(baud), turnaround: turnaround(b), echo: echo, timeout: timeout, lastRx: time.Now()}
}

// SetTimeout changes the per-transaction timeout.
func (t *RTUTransporter) SetTimeout(d time.Duration) {
	t.mu.Lock()
	t.timeout = d
	t.mu.Unlock()
}

// Close closes the port. It does not wait for a Send in progress, which
// returns at once with an error wrapping ErrBusDown; later Sends fail
// likewise. Safe to call more than once, from any goroutine.
func (t *RTUTransporter) Close() error {
	if !t.closed.CompareAndSwap(false, true) {
		return nil
	}
	return t.port.Close()
}

// Send writes the request ADU and returns the reply ADU that answers it.
// Errors wrap ErrTimeout (no valid reply in time), ErrCRC (a reply for us
// with a bad CRC, and nothing better within the turnaround allowance),
// ErrFrame (a wrong or missing echo, two different replies) or
// ErrBusDown (the port failed or was closed, or the line never went
// quiet).
func (t *RTUTransporter) Send(req []byte) ([]byte, error) {
	if len(req) < 4 || len(req) > rtuMaxADU {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrFrame, len(req))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return nil, errPortClosed
	}
	if err := t.quiet(req[0]); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := t.port.SetWriteDeadline(start.Add(t.timeout)); err != nil {
		return nil, t.linkErr("set write deadline", err)
	}
	if _, err := t.port.Write(req); err != nil {
		return nil, t.linkErr("write", err)
	}
	// The UART is still shifting the request out when Write returns.
	txEnd := start.Add(time.Duration(len(req)) * t.char)
	t.lastTx = txEnd
	ex := exchange{t: t, req: req, start: start, deadline: txEnd.Add(t.timeout), open: time.Now()}
	if t.line {
		ex.open = txEnd.Add(t.gap)
	}
	frame, err := ex.run()
	t.lastOK = err == nil
	if err != nil {
		if !errors.Is(err, ErrBusDown) {
			t.failed[req[0]] = ex.failAt
		}
		return nil, err
	}
	t.failed[req[0]] = time.Time{}
	return append([]byte(nil), frame...), nil
}

var errPortClosed = fmt.Errorf("%w: port closed", ErrBusDown)

// linkErr wraps a port error in ErrBusDown.
func (t *RTUTransporter) linkErr(op string, err error) error {
	switch {
	case t.closed.Load() || errors.Is(err, os.ErrClosed):
		return errPortClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %s did not complete in %v", ErrBusDown, op, t.timeout)
	}
	return fmt.Errorf("%w: %s: %v", ErrBusDown, op, err)
}

// readBy reads into b until deadline: (0, nil) when nothing came by
// then, an error wrapping ErrBusDown when the port failed.
func (t *RTUTransporter) readBy(b []byte, deadline time.Time) (int, error) {
	if err := t.port.SetReadDeadline(deadline); err != nil {
		return 0, t.linkErr("set read deadline", err)
	}
	n, err := t.port.Read(b)
	if n > 0 {
		t.lastRx = time.Now()
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		if n > 0 {
			return n, nil // the error comes back on the next read
		}
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: read: end of file (device unplugged?)", ErrBusDown)
		}
		return 0, t.linkErr("read", err)
	}
	return n, nil
}

// quiet waits until a request to slave may go out (see RTUTransporter),
// discarding what arrives meanwhile. It gives up with ErrBusDown when the
// line does not go quiet within the timeout.
func (t *RTUTransporter) quiet(slave byte) error {
	now := time.Now()
	since := later(t.lastRx, t.lastTx)
	need := t.settleTime()
	if f := t.failed[slave]; !f.IsZero() {
		since, need = later(since, f), t.turnaround
	}
	limit := now.Add(t.timeout + need)
	discarded := 0
	scratch := t.rx.b[:] // free between transactions
	for {
		pending, err := t.port.Buffered()
		if err != nil {
			return t.linkErr("input queue", err)
		}
		wait := since.Add(need).Sub(now)
		if pending == 0 && wait <= 0 {
			return nil
		}
		if now.After(limit) {
			return fmt.Errorf("%w: line not silent for %v within %v (%d bytes discarded: another master on the line?)",
				ErrBusDown, need, t.timeout+need, discarded)
		}
		if pending > 0 || wait < time.Millisecond {
			wait = time.Millisecond // read what is there now
		}
		n, err := t.readBy(scratch, now.Add(wait))
		if err != nil {
			return err
		}
		now = time.Now()
		if n > 0 {
			// Bytes nobody asked for: a late or repeated frame. Let its
			// sender finish before talking on the line.
			if gap := now.Sub(since); t.lastOK && discarded == 0 && gap < 4*t.settle {
				t.sawDuplicate(gap) // most likely a copy of the last reply, just too late
			}
			discarded += n
			since, need = now, t.turnaround
		}
	}
}

// settleTime is the silence required after a good reply: SettleTime, or
// longer on a bus that sent duplicates lately.
func (t *RTUTransporter) settleTime() time.Duration { return max(t.settle, t.dupWait) }

// sawDuplicate learns from a copy of a reply that came gap after it: the
// bus then settles for twice that gap plus 2 ms, and at least twice
// SettleTime, since the gap measured on a busy host can be shorter than
// the repeater's real one (never longer than the turnaround).
func (t *RTUTransporter) sawDuplicate(gap time.Duration) {
	t.dupWait = min(max(t.dupWait, 2*gap+2*time.Millisecond, 2*t.settle), t.turnaround)
	t.noDup = 0
}

// answered counts a transaction that settled without a duplicate.
func (t *RTUTransporter) answered() {
	if t.noDup++; t.noDup >= dupForget {
		t.dupWait = 0
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// crcOK checks the Modbus CRC-16 (poly 0xA001, init 0xFFFF, low byte first)
// at the end of frame.
func crcOK(frame []byte) bool {
	if len(frame) < 4 {
		return false
	}
	c := crc16(frame[:len(frame)-2])
	return frame[len(frame)-2] == byte(c) && frame[len(frame)-1] == byte(c>>8)
}

func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
