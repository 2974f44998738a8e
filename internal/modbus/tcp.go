package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

const (
	mbapLen   = 7   // MBAP header: transaction id, protocol id, length, unit id
	tcpMaxADU = 260 // Modbus Messaging on TCP/IP v1.0b §3.1.3

	// maxStale is how many replies with an older transaction id one
	// request may skip before the connection is judged out of step and
	// reopened.
	maxStale = 8
	// maxTimeouts is how many transactions in a row may time out on one
	// connection before it is reopened (a half-open TCP connection never
	// reports an error by itself).
	maxTimeouts = 3
)

// TCPTransporter is a goburrow/modbus Transporter for Modbus TCP with its
// own connection handling: a deadline per transaction; replies whose
// transaction id is older than the request's are read and skipped (a late
// reply to a timed-out request never answers a later one and never leaves
// the stream one behind); an implausible MBAP header (protocol id not 0,
// a length outside 2..254, and for the reply to the request sent a unit
// id, function or length that reply cannot have) means the stream is out
// of step: the connection is closed at once and the error wraps
// ErrBusDown and ErrFrame, so nothing more is read from it. The
// connection is also reopened after an I/O error, after maxStale stale
// replies in one transaction or after maxTimeouts timeouts in a row.
//
// Send is for one goroutine at a time (concurrent calls are serialised);
// Close may be called from any goroutine and makes a Send in progress
// return at once with an error wrapping ErrBusDown.
type TCPTransporter struct {
	addr    string
	timeout time.Duration

	mu       sync.Mutex // one transaction at a time
	timeouts int
	buf      [tcpMaxADU]byte

	connMu sync.Mutex // guards conn and closed; never held during I/O
	conn   net.Conn
	closed bool
}

// NewTCPTransporter returns a transporter for host:port; timeout bounds
// the connect and each transaction.
func NewTCPTransporter(addr string, timeout time.Duration) *TCPTransporter {
	return &TCPTransporter{addr: addr, timeout: timeout}
}

// Connect opens the connection if it is not open. Errors wrap ErrBusDown.
func (t *TCPTransporter) Connect() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.connect()
	return err
}

var errConnClosed = fmt.Errorf("%w: connection closed", ErrBusDown)

func (t *TCPTransporter) connect() (net.Conn, error) {
	t.connMu.Lock()
	c, closed := t.conn, t.closed
	t.connMu.Unlock()
	if closed {
		return nil, errConnClosed
	}
	if c != nil {
		return c, nil
	}
	d := net.Dialer{Timeout: t.timeout}
	c, err := d.Dial("tcp", t.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: connect %s: %v", ErrBusDown, t.addr, err)
	}
	t.connMu.Lock()
	defer t.connMu.Unlock()
	if t.closed { // closed while dialling
		c.Close()
		return nil, errConnClosed
	}
	t.conn = c
	t.timeouts = 0
	return c, nil
}

// Close closes the connection for good: a Send in progress returns at
// once and later Sends fail, with errors wrapping ErrBusDown. Safe to call
// more than once, from any goroutine.
func (t *TCPTransporter) Close() error {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	t.closed = true
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}

// drop closes c if it is still the current connection; the next Send
// reconnects.
func (t *TCPTransporter) drop(c net.Conn) {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	if t.conn == c {
		t.conn = nil
	}
	c.Close()
}

// Send writes the request ADU (with its MBAP header) and returns the reply
// ADU with the same transaction id. Errors wrap ErrTimeout, ErrFrame or
// ErrBusDown (an out-of-step stream wraps both ErrBusDown and ErrFrame).
func (t *TCPTransporter) Send(req []byte) ([]byte, error) {
	if len(req) < mbapLen+1 {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrFrame, len(req))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.connect()
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(t.timeout)); err != nil {
		t.drop(c)
		return nil, t.ioErr("set deadline", err)
	}
	if _, err := c.Write(req); err != nil {
		t.drop(c)
		return nil, t.ioErr("write", err)
	}
	want := binary.BigEndian.Uint16(req)
	for stale := 0; ; stale++ {
		frame, err := t.readFrame(c, req)
		if err != nil {
			return nil, err
		}
		got := binary.BigEndian.Uint16(frame)
		if got == want {
			t.timeouts = 0
			return append([]byte(nil), frame...), nil
		}
		// want-got in 1..0x7FFF (mod 2^16): an older transaction's late
		// reply. Anything else is not a reply to anything we sent.
		if d := want - got; d == 0 || d >= 0x8000 {
			t.drop(c)
			return nil, fmt.Errorf("%w: %w: reply transaction id %d is ahead of request %d; reconnecting", ErrBusDown, ErrFrame, got, want)
		}
		if stale >= maxStale {
			t.drop(c)
			return nil, fmt.Errorf("%w: %d stale replies before the one to transaction %d; reconnecting", ErrFrame, stale+1, want)
		}
	}
}

// readFrame reads one MBAP frame into t.buf. On a timeout before the first
// byte the connection is kept (a late reply will be skipped by its
// transaction id); a timeout inside a frame, an implausible header or any
// other error closes it, as the stream is then out of step. The header of
// the reply to req (same transaction id) must also have req's unit id and
// the length of the normal reply to req or of an exception (3), checked
// before the body is read, and then the function that goes with it.
func (t *TCPTransporter) readFrame(c net.Conn, req []byte) ([]byte, error) {
	n, err := io.ReadFull(c, t.buf[:mbapLen])
	if err != nil {
		return nil, t.readErr(c, n, err)
	}
	h := t.buf[:mbapLen]
	length := int(binary.BigEndian.Uint16(h[4:]))
	proto := binary.BigEndian.Uint16(h[2:])
	if proto != 0 || length < 2 || mbapLen-1+length > tcpMaxADU {
		t.drop(c)
		return nil, outOfStep(h, fmt.Sprintf("protocol %d, length %d", proto, length))
	}
	ours := h[0] == req[0] && h[1] == req[1]
	normal := 1 + replyPDULen(req[mbapLen:]) // 1 if the function is not known
	if ours && (h[6] != req[6] || normal > 1 && length != normal && length != 3) {
		t.drop(c)
		return nil, outOfStep(h, fmt.Sprintf("unit %d, length %d: cannot answer unit %d function 0x%02X", h[6], length, req[6], req[mbapLen]))
	}
	end := mbapLen - 1 + length
	m, err := io.ReadFull(c, t.buf[mbapLen:end])
	if err != nil {
		return nil, t.readErr(c, n+m, err)
	}
	if fc := t.buf[mbapLen]; ours && normal > 1 && !(fc == req[mbapLen] && length == normal || fc == req[mbapLen]|0x80 && length == 3) {
		t.drop(c)
		return nil, outOfStep(h, fmt.Sprintf("function 0x%02X, length %d: cannot answer function 0x%02X", fc, length, req[mbapLen]))
	}
	return t.buf[:end], nil
}

// outOfStep is the error of an implausible MBAP header h.
func outOfStep(h []byte, why string) error {
	return fmt.Errorf("%w: %w: MBAP header % X (%s): stream out of step, reconnecting", ErrBusDown, ErrFrame, h, why)
}

func (t *TCPTransporter) readErr(c net.Conn, got int, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.timeouts++
		if got > 0 || t.timeouts >= maxTimeouts {
			t.drop(c)
		}
		if got > 0 {
			return fmt.Errorf("%w: reply cut short after %d bytes in %v", ErrTimeout, got, t.timeout)
		}
		return fmt.Errorf("%w: no reply in %v", ErrTimeout, t.timeout)
	}
	t.drop(c)
	return t.ioErr("read", err)
}

func (t *TCPTransporter) ioErr(op string, err error) error {
	t.connMu.Lock()
	closed := t.closed
	t.connMu.Unlock()
	if closed || errors.Is(err, net.ErrClosed) {
		return errConnClosed
	}
	return fmt.Errorf("%w: %s: %v", ErrBusDown, op, err)
}
