package modbus

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.bug.st/serial"

	"github.com/hazmon/hazmon/internal/config"
)

// Port is the serial line of an RTU bus. go.bug.st/serial.Port satisfies it;
// tests may pass any implementation with the same read-timeout semantics.
type Port interface {
	io.ReadWriter
	// SetReadTimeout bounds each following Read: a Read that waits longer
	// returns 0, nil.
	SetReadTimeout(d time.Duration) error
	// ResetInputBuffer discards bytes received but not yet read.
	ResetInputBuffer() error
}

// Serial line defaults applied when a config.Bus leaves them zero (the
// config loader normally fills them): 9600 baud 8E1 is the default of the
// Modbus over Serial Line spec v1.02 §2.5.1.
const (
	DefaultBaud     = 9600
	DefaultDataBits = 8
	DefaultParity   = "E"
	DefaultStopBits = 1
)

// OpenSerial opens the RTU bus's serial port with its baud rate, data bits,
// parity (N, E or O) and stop bits (1 or 2). Errors wrap ErrBusDown.
func OpenSerial(bus config.Bus) (serial.Port, error) {
	mode := &serial.Mode{BaudRate: bus.Baud, DataBits: bus.DataBits, StopBits: serial.OneStopBit}
	if mode.BaudRate == 0 {
		mode.BaudRate = DefaultBaud
	}
	if mode.DataBits == 0 {
		mode.DataBits = DefaultDataBits
	}
	parity := bus.Parity
	if parity == "" {
		parity = DefaultParity
	}
	switch strings.ToUpper(parity) {
	case "N":
		mode.Parity = serial.NoParity
	case "E":
		mode.Parity = serial.EvenParity
	case "O":
		mode.Parity = serial.OddParity
	default:
		return nil, fmt.Errorf("open %s: parity %q (want N, E or O)", bus.Device, bus.Parity)
	}
	switch bus.StopBits {
	case 0, 1:
	case 2:
		mode.StopBits = serial.TwoStopBits
	default:
		return nil, fmt.Errorf("open %s: stop bits %d (want 1 or 2)", bus.Device, bus.StopBits)
	}
	p, err := serial.Open(bus.Device, mode)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrBusDown, bus.Device, err)
	}
	return p, nil
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
// serial port. Unlike goburrow's own it discards stale input before each
// request, keeps the t3.5 silence between frames, reads until the reply
// frame is complete (no fixed sleep), returns exception replies as soon as
// their 5 bytes are in, and accepts only a frame with the request's slave
// id, function code and a good CRC, so a late reply to an earlier request
// is never taken as the answer to a later one. It is safe for concurrent
// use (one transaction at a time), but the Poller is its only user.
type RTUTransporter struct {
	port    Port
	baud    int
	gap     time.Duration
	char    time.Duration
	timeout time.Duration

	mu      sync.Mutex
	lastEnd time.Time // when the line last went quiet (our request or received bytes)
	buf     [2 * rtuMaxADU]byte
}

const (
	rtuMaxADU       = 256 // max RTU frame, Modbus over Serial Line v1.02 §2.5.1.1
	rtuExceptionLen = 5   // slave, fc|0x80, code, CRC
)

// NewRTUTransporter returns a transporter over port at baud (used for the
// t3.5 silence); timeout bounds each transaction from the end of the
// request to the end of the reply.
func NewRTUTransporter(port Port, baud int, timeout time.Duration) *RTUTransporter {
	if baud <= 0 {
		baud = DefaultBaud
	}
	return &RTUTransporter{port: port, baud: baud, gap: FrameGap(baud), char: CharTime(baud), timeout: timeout}
}

// SetTimeout changes the per-transaction timeout.
func (t *RTUTransporter) SetTimeout(d time.Duration) {
	t.mu.Lock()
	t.timeout = d
	t.mu.Unlock()
}

// Close closes the port if it is an io.Closer.
func (t *RTUTransporter) Close() error {
	if c, ok := t.port.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Send writes the request ADU and returns the matching reply ADU. Errors
// wrap ErrTimeout (no valid reply in time), ErrCRC (a reply for us with a
// bad CRC) or ErrBusDown (the port failed).
func (t *RTUTransporter) Send(req []byte) ([]byte, error) {
	if len(req) < 4 {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrFrame, len(req))
	}
	t.mu.Lock()
	defer t.mu.Unlock()

	if err := t.flush(); err != nil {
		return nil, err
	}
	// t3.5: the request must not start until the line has been quiet for
	// one frame gap since the last frame ended.
	if wait := time.Until(t.lastEnd.Add(t.gap)); wait > 0 {
		time.Sleep(wait)
	}
	start := time.Now()
	if _, err := t.port.Write(req); err != nil {
		return nil, fmt.Errorf("%w: write: %v", ErrBusDown, err)
	}
	// The UART is still shifting the request out when Write returns.
	txEnd := start.Add(time.Duration(len(req)) * t.char)
	t.lastEnd = txEnd
	deadline := txEnd.Add(t.timeout)
	frame, err := t.readReply(req, deadline)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(frame))
	copy(out, frame)
	return out, nil
}

// flush discards whatever is waiting in the input: bytes of a reply that
// arrived after its request had timed out, or line noise.
func (t *RTUTransporter) flush() error {
	if err := t.port.ResetInputBuffer(); err != nil {
		return fmt.Errorf("%w: flush: %v", ErrBusDown, err)
	}
	if err := t.port.SetReadTimeout(0); err != nil {
		return fmt.Errorf("%w: set read timeout: %v", ErrBusDown, err)
	}
	for range 64 { // bounded: a babbling line cannot hold us here
		n, err := t.port.Read(t.buf[:])
		if err != nil {
			return fmt.Errorf("%w: flush: %v", ErrBusDown, err)
		}
		if n == 0 {
			return nil
		}
		t.lastEnd = time.Now()
	}
	return nil
}

// readReply reads until a frame answering req is complete or the deadline
// passes. Frames for other slaves or functions and noise are skipped.
func (t *RTUTransporter) readReply(req []byte, deadline time.Time) ([]byte, error) {
	n := 0
	badCRC := false
	for {
		frame, bad := matchReply(req, t.buf[:n])
		if frame != nil {
			return frame, nil
		}
		badCRC = badCRC || bad
		wait := time.Until(deadline)
		quiet := max(4*t.gap, 20*time.Millisecond)
		if badCRC && wait > quiet {
			// A frame for us came in damaged; if nothing follows within a
			// short quiet time, report it now rather than at the timeout.
			wait = quiet
		}
		if wait <= 0 {
			return nil, t.failure(n, badCRC)
		}
		if n == len(t.buf) {
			// Noise filled the buffer: keep the newest half.
			copy(t.buf[:], t.buf[rtuMaxADU:])
			n = rtuMaxADU
		}
		if err := t.port.SetReadTimeout(wait); err != nil {
			return nil, fmt.Errorf("%w: set read timeout: %v", ErrBusDown, err)
		}
		m, err := t.port.Read(t.buf[n:])
		if err != nil {
			return nil, fmt.Errorf("%w: read: %v", ErrBusDown, err)
		}
		if m == 0 {
			if badCRC || !time.Now().Before(deadline) {
				t.lastEnd = time.Now()
				return nil, t.failure(n, badCRC)
			}
			continue
		}
		n += m
		t.lastEnd = time.Now()
	}
}

func (t *RTUTransporter) failure(n int, badCRC bool) error {
	switch {
	case badCRC:
		return fmt.Errorf("%w in reply", ErrCRC)
	case n > 0:
		return fmt.Errorf("%w: no valid reply in %v (%d bytes of other frames or noise discarded)", ErrTimeout, t.timeout, n)
	}
	return fmt.Errorf("%w: no reply in %v", ErrTimeout, t.timeout)
}

// matchReply looks in buf for a complete frame answering req: same slave
// id, the request's function code (length from the byte count or the
// function) or its exception (5 bytes), and a good CRC. badCRC reports a
// complete frame that starts the buffer and matches the header but fails
// the CRC.
func matchReply(req, buf []byte) (frame []byte, badCRC bool) {
	slave, fc := req[0], req[1]
	for off := 0; off+2 <= len(buf); off++ {
		if buf[off] != slave {
			continue
		}
		var size int
		switch buf[off+1] {
		case fc | 0x80:
			size = rtuExceptionLen
		case fc:
			size = replySize(req, buf[off:])
		default:
			continue
		}
		if size <= 0 || off+size > len(buf) {
			continue
		}
		f := buf[off : off+size]
		if crcOK(f) {
			return f, false
		}
		if off == 0 {
			badCRC = true
		}
	}
	return nil, badCRC
}

// replySize is the length of the normal reply to req whose start is in b
// (b[0] slave, b[1] function), or 0 if not known yet.
func replySize(req, b []byte) int {
	switch req[1] {
	case 0x01, 0x02, 0x03, 0x04, 0x17: // byte count follows the function code
		if len(b) < 3 {
			return 0
		}
		return 5 + int(b[2])
	case 0x05, 0x06, 0x0F, 0x10: // echo of address and value/quantity
		return 8
	case 0x16: // mask write: address, AND mask, OR mask
		return 10
	}
	return 0
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
