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
// own connection handling: a deadline per transaction, replies whose
// transaction id is older than the request's are read and skipped (a late
// reply to a timed-out request never answers a later one and never leaves
// the stream one behind), and the connection is reopened after an I/O or
// framing error, after maxStale stale replies in one transaction or after
// maxTimeouts timeouts in a row. Safe for concurrent use, one transaction
// at a time.
type TCPTransporter struct {
	addr    string
	timeout time.Duration

	mu       sync.Mutex
	conn     net.Conn
	timeouts int
	buf      [tcpMaxADU]byte
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
	return t.connect()
}

func (t *TCPTransporter) connect() error {
	if t.conn != nil {
		return nil
	}
	d := net.Dialer{Timeout: t.timeout}
	c, err := d.Dial("tcp", t.addr)
	if err != nil {
		return fmt.Errorf("%w: connect %s: %v", ErrBusDown, t.addr, err)
	}
	t.conn = c
	t.timeouts = 0
	return nil
}

// Close closes the connection; the next Send reconnects.
func (t *TCPTransporter) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closeConn()
}

func (t *TCPTransporter) closeConn() error {
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}

// Send writes the request ADU (with its MBAP header) and returns the reply
// ADU with the same transaction id. Errors wrap ErrTimeout, ErrFrame or
// ErrBusDown.
func (t *TCPTransporter) Send(req []byte) ([]byte, error) {
	if len(req) < mbapLen+1 {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrFrame, len(req))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.connect(); err != nil {
		return nil, err
	}
	if err := t.conn.SetDeadline(time.Now().Add(t.timeout)); err != nil {
		t.closeConn()
		return nil, fmt.Errorf("%w: set deadline: %v", ErrBusDown, err)
	}
	if _, err := t.conn.Write(req); err != nil {
		t.closeConn()
		return nil, fmt.Errorf("%w: write: %v", ErrBusDown, err)
	}
	want := binary.BigEndian.Uint16(req)
	for stale := 0; ; stale++ {
		frame, err := t.readFrame()
		if err != nil {
			return nil, err
		}
		got := binary.BigEndian.Uint16(frame)
		if got == want {
			t.timeouts = 0
			out := make([]byte, len(frame))
			copy(out, frame)
			return out, nil
		}
		// want-got in 1..0x7FFF (mod 2^16): an older transaction's late
		// reply. Anything else is not a reply to anything we sent.
		if d := want - got; d == 0 || d >= 0x8000 {
			t.closeConn()
			return nil, fmt.Errorf("%w: reply transaction id %d is ahead of request %d", ErrFrame, got, want)
		}
		if stale >= maxStale {
			t.closeConn()
			return nil, fmt.Errorf("%w: %d stale replies before the one to transaction %d; reconnecting", ErrFrame, stale+1, want)
		}
	}
}

// readFrame reads one MBAP frame into t.buf. On a timeout before the first
// byte the connection is kept (a late reply will be skipped by its
// transaction id); a timeout inside a frame or any other error closes it,
// as the stream is then out of step.
func (t *TCPTransporter) readFrame() ([]byte, error) {
	n, err := io.ReadFull(t.conn, t.buf[:mbapLen])
	if err != nil {
		return nil, t.readErr(n, err)
	}
	length := int(binary.BigEndian.Uint16(t.buf[4:]))
	if proto := binary.BigEndian.Uint16(t.buf[2:]); proto != 0 || length < 2 || mbapLen-1+length > tcpMaxADU {
		t.closeConn()
		return nil, fmt.Errorf("%w: MBAP header % X (protocol %d, length %d)", ErrFrame, t.buf[:mbapLen], proto, length)
	}
	end := mbapLen - 1 + length
	m, err := io.ReadFull(t.conn, t.buf[mbapLen:end])
	if err != nil {
		return nil, t.readErr(n+m, err)
	}
	return t.buf[:end], nil
}

func (t *TCPTransporter) readErr(got int, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.timeouts++
		if got > 0 || t.timeouts >= maxTimeouts {
			t.closeConn()
		}
		if got > 0 {
			return fmt.Errorf("%w: reply cut short after %d bytes in %v", ErrTimeout, got, t.timeout)
		}
		return fmt.Errorf("%w: no reply in %v", ErrTimeout, t.timeout)
	}
	t.closeConn()
	return fmt.Errorf("%w: read: %v", ErrBusDown, err)
}
