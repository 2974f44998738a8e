package mbslave

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// maxRTUFrame is the largest Modbus RTU frame (address + PDU + CRC).
const maxRTUFrame = 256

// CharTime returns the time one character takes on an RTU line at baud
// (11 bits a character: start, 8 data, parity or second stop, stop);
// 0 for baud <= 0.
func CharTime(baud int) time.Duration {
	if baud <= 0 {
		return 0
	}
	return time.Duration(11 * int64(time.Second) / int64(baud))
}

// FrameGap returns the t3.5 inter-frame silence at baud: 3.5 character
// times, fixed at 1750 µs above 19200 baud (Modbus over Serial Line V1.02,
// 2.5.1.1); 0 for baud <= 0.
func FrameGap(baud int) time.Duration {
	if baud <= 0 {
		return 0
	}
	if baud > 19200 {
		return 1750 * time.Microsecond
	}
	return CharTime(baud) * 7 / 2
}

// silence is how long the RTU framer waits before deciding that buffered
// bytes that do not form a complete frame are garbage (or, for function
// codes of unknown request length, that the frame is complete). A pty
// delivers each write at once, so this only matters for resync; it is
// larger than t3.5 so scheduling jitter on a loaded machine does not cut
// real frames.
const silence = 50 * time.Millisecond

// deadliner is a port whose blocked Read can be released (an *os.File on a
// tty or pty, a net.Conn).
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// ServeRTU serves b as a Modbus RTU slave on port until ctx is done.
//
// Requests are framed by their expected length from the function code
// (FC01-06: 8 bytes; FC15/16: 9 + byte count) and checked by CRC; on a CRC
// failure bytes are discarded one at a time to resync, and incomplete bytes
// followed by silence are discarded. Frames for units that are not added
// get no reply; unit 0 is a broadcast (writes executed on every unit, no
// reply).
//
// baud > 0 makes the timing honest on a pty, which has no line speed: the
// slave waits the request's own wire time plus t3.5 before replying and
// paces the reply at CharTime(baud) a byte, so a transaction takes at least
// as long as on a real line. baud 0 disables pacing.
//
// If port has SetReadDeadline (an *os.File from OpenPort, a net.Conn),
// ServeRTU returns only after its reader goroutine has ended; otherwise the
// reader ends when the caller closes the port. ServeRTU returns nil when
// ctx is done and an error when reading or writing the port fails.
func ServeRTU(ctx context.Context, port io.ReadWriter, b *Bank, baud int) error {
	chunks := make(chan []byte)
	readErr := make(chan error, 1)
	stopRead := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 512)
		for {
			n, err := port.Read(buf)
			if n > 0 {
				select {
				case chunks <- append([]byte(nil), buf[:n]...):
				case <-stopRead:
					return
				}
			}
			if err != nil {
				select {
				case <-stopRead:
				default:
					readErr <- err
				}
				return
			}
		}
	})
	defer func() {
		close(stopRead)
		if d, ok := port.(deadliner); ok && d.SetReadDeadline(time.Now()) == nil {
			wg.Wait()
			_ = d.SetReadDeadline(time.Time{})
		}
	}()

	s := rtuSession{ctx: ctx, port: port, bank: b, baud: baud}
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("modbus rtu slave: read: %w", err)
		case c := <-chunks:
			if b.echoing() {
				// The adapter hears its own transmission, at once.
				if _, err := port.Write(c); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("modbus rtu slave: echo: %w", err)
				}
			}
			s.buf = append(s.buf, c...)
			if err := s.drain(); err != nil {
				return err
			}
			if len(s.buf) > 0 {
				idle.Reset(silence)
			}
		case <-idle.C:
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
}

// rtuSession is the framing state of one ServeRTU call.
type rtuSession struct {
	ctx  context.Context
	port io.ReadWriter
	bank *Bank
	baud int
	buf  []byte
}

// requestLen returns the length of the RTU request frame starting at buf[0]
// (address, function code, ...), 0 if more bytes are needed to know it, or
// -1 if the function code has no known request length.
func requestLen(buf []byte) int {
	if len(buf) < 2 {
		return 0
	}
	switch buf[1] {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters,
		FuncWriteSingleCoil, FuncWriteSingleRegister:
		return 8
	case FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		if len(buf) < 7 {
			return 0
		}
		return 9 + int(buf[6])
	}
	return -1
}

// drain handles every complete frame at the start of s.buf, discarding
// bytes that cannot start a valid frame.
func (s *rtuSession) drain() error {
	for len(s.buf) >= 2 {
		n := requestLen(s.buf)
		if n > maxRTUFrame { // byte count too large: not a frame start
			s.buf = s.buf[1:]
			continue
		}
		if n <= 0 || len(s.buf) < n {
			return nil // need more bytes, or silence decides
		}
		if !crcOK(s.buf[:n]) {
			s.buf = s.buf[1:]
			continue
		}
		frame := s.buf[:n]
		s.buf = s.buf[n:]
		if err := s.handle(frame); err != nil {
			return err
		}
	}
	return nil
}

// flush is called after silence: the buffered bytes are either one frame
// of a function code with no known length (answered with exception 1 if
// its CRC is valid) or garbage, which is dropped byte by byte while looking
// for a valid frame further on.
func (s *rtuSession) flush() error {
	for len(s.buf) > 0 {
		if len(s.buf) >= 4 && crcOK(s.buf) {
			frame := s.buf
			s.buf = nil
			return s.handle(frame)
		}
		s.buf = s.buf[1:]
		if err := s.drain(); err != nil {
			return err
		}
	}
	return nil
}

// handle executes one CRC-checked request frame and writes the reply.
func (s *rtuSession) handle(frame []byte) error {
	id := frame[0]
	pdu := frame[1 : len(frame)-2]
	if id == 0 {
		s.bank.broadcast(pdu)
		return nil
	}
	reply, f, _, answer := s.bank.process(id, pdu)
	if !answer {
		return nil
	}
	start := time.Now()
	wait := f.Delay
	if s.baud > 0 {
		wait += time.Duration(len(frame))*CharTime(s.baud) + FrameGap(s.baud)
	}
	if !sleep(s.ctx, wait) {
		return nil
	}
	if f.WrongUnit {
		id++
		if id == 0 {
			id = 1
		}
	}
	adu := append([]byte{id}, reply...)
	adu = appendCRC(adu)
	if f.BadCRC {
		adu[len(adu)-1] ^= 0xFF
		adu[len(adu)-2] ^= 0x5A
	}
	if err := writeReply(s.ctx, s.port, adu, f, CharTime(s.baud)); err != nil {
		if s.ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("modbus rtu slave: unit %d: %w", id, err)
	}
	s.bank.slip.note(time.Since(start), wait+replyTime(adu, f, CharTime(s.baud)))
	if err := writeDuplicate(s.ctx, s.port, adu, f, &s.bank.slip); err != nil {
		return fmt.Errorf("modbus rtu slave: unit %d: %w", id, err)
	}
	return nil
}
