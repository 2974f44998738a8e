package mbslave

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// mbapLen is the length of the Modbus TCP (MBAP) header including the unit id.
const mbapLen = 7

// TCPServer serves a Bank as a Modbus TCP slave. Use ServeTCP for the
// common case; the struct lets tests read the connection count.
type TCPServer struct {
	Bank *Bank

	mu       sync.Mutex
	accepted int
}

// Accepted returns how many TCP connections the server has accepted.
func (s *TCPServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// ServeTCP serves b on ln as a Modbus TCP slave until ctx is done, then
// closes ln and every connection and returns nil once all connection
// goroutines have ended. It returns an error if accepting fails otherwise.
func ServeTCP(ctx context.Context, ln net.Listener, b *Bank) error {
	return (&TCPServer{Bank: b}).Serve(ctx, ln)
}

// Serve serves s.Bank on ln until ctx is done; see ServeTCP.
func (s *TCPServer) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
	})
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("modbus tcp slave %s: accept: %w", ln.Addr(), err)
		}
		s.mu.Lock()
		s.accepted++
		s.mu.Unlock()
		wg.Go(func() {
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			s.serveConn(ctx, c)
		})
	}
}

// serveConn answers requests on one connection, in order, until the peer
// closes it, a malformed header arrives or ctx is done.
func (s *TCPServer) serveConn(ctx context.Context, c net.Conn) {
	hdr := make([]byte, mbapLen)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		proto := binary.BigEndian.Uint16(hdr[2:])
		n := int(binary.BigEndian.Uint16(hdr[4:]))
		if proto != 0 || n < 2 || n > 254 {
			return // not Modbus: drop the connection like real devices do
		}
		pdu := make([]byte, n-1)
		if _, err := io.ReadFull(c, pdu); err != nil {
			return
		}
		id := hdr[6]
		reply, f, known, answer := s.Bank.process(id, pdu)
		if !known {
			reply, answer = exception(pdu[0], ExGatewayTargetNoResponse), true
		}
		if !answer {
			continue
		}
		if f.Drop {
			return
		}
		if f.Delay > 0 && !sleep(ctx, f.Delay) {
			return
		}
		if f.WrongUnit {
			id++
		}
		adu := make([]byte, 0, mbapLen+len(reply))
		proto = 0
		if f.WrongProtocol {
			proto = 1
		}
		adu = append(adu, hdr[0], hdr[1])
		adu = binary.BigEndian.AppendUint16(adu, proto)
		adu = binary.BigEndian.AppendUint16(adu, uint16(len(reply)+1+f.LengthSkew))
		adu = append(adu, id)
		adu = append(adu, reply...)
		if err := writeReply(ctx, c, adu, f, 0); err != nil {
			return
		}
		if err := writeDuplicate(ctx, c, adu, f, &s.Bank.slip); err != nil {
			return
		}
	}
}

// writeReply writes the garbage of f (if any) and adu, in two pieces with
// f.Split between them if set. charTime > 0 paces the bytes at that time
// per character (RTU line speed).
func writeReply(ctx context.Context, w io.Writer, adu []byte, f Fault, charTime time.Duration) error {
	pieces := [][]byte{adu}
	if f.Split > 0 && len(adu) > 1 {
		pieces = [][]byte{adu[:len(adu)/2], adu[len(adu)/2:]}
	}
	if len(f.Garbage) > 0 {
		pieces[0] = append(append([]byte(nil), f.Garbage...), pieces[0]...)
	}
	for i, p := range pieces {
		if i > 0 && !sleep(ctx, f.Split) {
			return ctx.Err()
		}
		if charTime > 0 && !sleep(ctx, time.Duration(len(p))*charTime) {
			return ctx.Err()
		}
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("write reply: %w", err)
		}
	}
	return nil
}

// replyTime is what writeReply spends by design on adu: the pause of a
// split reply and, at a line speed, each piece's characters.
func replyTime(adu []byte, f Fault, charTime time.Duration) time.Duration {
	d := time.Duration(len(f.Garbage)+len(adu)) * charTime
	if f.Split > 0 && len(adu) > 1 {
		d += f.Split
	}
	return d
}

// writeDuplicate writes adu again, in one piece, f.Duplicate after the
// reply (nothing if f.Duplicate is 0 or ctx ends first), and notes in slip
// how much later than that it was written.
func writeDuplicate(ctx context.Context, w io.Writer, adu []byte, f Fault, slip *slipMeter) error {
	start := time.Now()
	if f.Duplicate <= 0 || !sleep(ctx, f.Duplicate) {
		return nil
	}
	if _, err := w.Write(adu); err != nil && ctx.Err() == nil {
		return fmt.Errorf("write duplicate: %w", err)
	}
	slip.note(time.Since(start), f.Duplicate)
	return nil
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
