package modbus

import (
	"bytes"
	"fmt"
	"time"
)

// rxBuf holds the bytes received during one RTU transaction and when each
// was read (since the request's start).
type rxBuf struct {
	b  [rtuBufLen]byte
	at [rtuBufLen]time.Duration
	n  int
}

// rtuBufLen holds an echo, a reply, a duplicate and some noise.
const rtuBufLen = 4 * rtuMaxADU

// Phases of an exchange.
const (
	phaseWait   = iota // no answer yet
	phaseCopy          // EchoAuto, FC05/06: a copy of the request came; echo or reply?
	phaseSettle        // answered; draining until the line is silent
)

// exchange is the receiving side of one RTU transaction: it reads until a
// frame answers the request and the line has settled, or the time is up.
type exchange struct {
	t        *RTUTransporter
	req      []byte
	start    time.Time // the write began
	deadline time.Time // the answer must be complete by then
	open     time.Time // a frame of L bytes read before open + L chars is not the answer (see Send)
	want     int       // length of the normal reply ADU, 0 if not known

	phase     int
	echoDone  bool      // whether the received bytes begin with the adapter's echo is decided
	echoed    bool      // they did, and the echo was skipped
	ambiguous bool      // EchoAuto, FC05/06, echo not known: a copy at 0 is echo or reply
	body      int       // where the answer may start (after the echo)
	pos       int       // where the next search starts
	badCRC    bool      // a frame for us with a bad CRC where the answer should be
	odd       int       // length of a well-formed frame for us of the wrong length (0: none)
	acc       []byte    // the answer (in t.reply)
	accEnd    int       // where it ends in the buffer
	dups      int       // identical copies of the answer drained
	failAt    time.Time // on failure: silence before the next request to this slave counts from here
}

// run receives the answer. See RTUTransporter.Send for the errors.
func (x *exchange) run() ([]byte, error) {
	t, rx := x.t, &x.t.rx
	rx.n = 0
	if w := replyPDULen(x.req[1 : len(x.req)-2]); w > 0 {
		x.want = 1 + w + 2
	}
	hardCap := x.deadline.Add(t.turnaround + t.settleTime()) // a babbling line cannot hold us longer
	peek := false
	for {
		if err := x.analyse(); err != nil {
			x.failAt = time.Now()
			return nil, err
		}
		until := x.until()
		if until.After(hardCap) {
			until = hardCap
		}
		if peek { // bytes are waiting: read them even though the time is up
			until, peek = time.Now().Add(time.Millisecond), false
		}
		if rx.n == len(rx.b) {
			x.compact()
		}
		n, err := t.readBy(rx.b[rx.n:], until)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			d := t.lastRx.Sub(x.start)
			for i := rx.n; i < rx.n+n; i++ {
				rx.at[i] = d
			}
			rx.n += n
			continue
		}
		now := time.Now()
		if now.Before(until) {
			continue
		}
		if pending, err := t.port.Buffered(); err != nil {
			return nil, t.linkErr("input queue", err)
		} else if pending > 0 && now.Before(hardCap) {
			peek = true // arrived as the time ran out: look at it first
			continue
		}
		switch x.phase {
		case phaseWait:
			x.failAt = now
			if x.badCRC || x.odd > 0 {
				x.failAt = t.lastRx // the line has been silent for the turnaround since
			}
			return nil, x.failure()
		case phaseCopy: // one copy, then silence: it was the reply
			x.learn(0)
		}
		if x.dups == 0 {
			t.answered()
		}
		return x.acc, nil
	}
}

// until is when the current phase ends if nothing more arrives.
func (x *exchange) until() time.Time {
	t := x.t
	switch x.phase {
	case phaseCopy:
		return t.lastRx.Add(t.turnaround)
	case phaseSettle:
		return t.lastRx.Add(t.settleTime())
	}
	if (x.badCRC || x.odd > 0) && t.lastRx.Add(t.turnaround).Before(x.deadline) {
		// What came for us was damaged; if nothing follows within the
		// turnaround, report it rather than wait for the timeout.
		return t.lastRx.Add(t.turnaround)
	}
	return x.deadline
}

// analyse looks at what was received so far and moves the phase on.
func (x *exchange) analyse() error {
	rx := &x.t.rx
	b := rx.b[:rx.n]
	if !x.echoDone {
		if done, err := x.decideEcho(b); err != nil || !done {
			return err
		}
	}
	for {
		off, size := x.find(b)
		if off < 0 {
			return nil
		}
		f := b[off : off+size]
		x.pos = off + size
		switch {
		case x.acc == nil:
			x.acc, x.accEnd = x.t.reply[:copy(x.t.reply[:], f)], x.pos
			if x.ambiguous && off == 0 {
				x.phase = phaseCopy
				continue
			}
			x.phase = phaseSettle
			x.learn(off)
		case x.phase == phaseCopy:
			// A second frame after the first copy: the copy was the echo.
			x.acc, x.accEnd = x.t.reply[:copy(x.t.reply[:], f)], x.pos
			x.echoed, x.phase = true, phaseSettle
			x.learn(off)
		case !bytes.Equal(f, x.acc):
			return fmt.Errorf("%w: two different replies (% X, then % X): a late or repeated frame, answer ambiguous", ErrFrame, x.acc, f)
		default:
			x.dups++ // a repeated copy of the answer, drained
			x.t.sawDuplicate(x.readAt(off).Sub(x.readAt(x.accEnd - 1)))
		}
	}
}

// decideEcho decides whether b begins with the adapter's echo of the
// request; done is false while too few bytes are in to tell.
func (x *exchange) decideEcho(b []byte) (done bool, err error) {
	t, e := x.t, x.req
	m := min(len(b), len(e))
	prefix := bytes.Equal(b[:m], e[:m])
	switch t.echo {
	case EchoOff:
		x.echoDone = true
		return true, nil
	case EchoOn:
		if !prefix {
			return false, fmt.Errorf("%w: the adapter's echo % X differs from the request % X (a collision on the line?)", ErrFrame, b[:m], e[:m])
		}
		if len(b) < len(e) {
			return false, nil
		}
		x.skipEcho()
		return true, nil
	}
	if !prefix {
		x.echoDone = true // the first bytes are not our request: no echo
		return true, nil
	}
	if len(b) < len(e) {
		return false, nil
	}
	early := t.line && x.readAt(len(e)-1).Before(x.open.Add(time.Duration(len(e))*t.char))
	switch {
	case !replyIsRequestCopy(e[1]) || early || t.echoes > 0:
		x.skipEcho()
	case t.echoes < 0:
		x.echoDone = true // the adapter does not echo: the copy is the reply
	default:
		x.echoDone, x.ambiguous = true, true
	}
	return true, nil
}

func (x *exchange) skipEcho() {
	x.echoDone, x.echoed = true, true
	x.body, x.pos = len(x.req), len(x.req)
}

// learn updates EchoAuto's knowledge of the adapter from an answer found
// at offset off.
func (x *exchange) learn(off int) {
	t := x.t
	switch {
	case t.echo != EchoAuto:
	case x.echoed:
		t.echoes, t.clean = 1, 0
	case replyIsRequestCopy(x.req[1]): // a copy taken for the reply tells nothing
	case off == 0: // the answer came first: no echo
		t.clean++
		if t.echoes <= 0 || t.clean >= echoUnlearn {
			t.echoes = -1
		}
	}
}

// find returns the first frame at or after x.pos that answers the request
// (slave, function or its exception, length, CRC, inside the window), or
// off -1. It notes a damaged frame where the answer should start.
func (x *exchange) find(b []byte) (off, size int) {
	slave, fc := x.req[0], x.req[1]
	for off = x.pos; off+2 <= len(b); off++ {
		if b[off] != slave {
			continue
		}
		switch b[off+1] {
		case fc | 0x80:
			size = rtuExceptionLen
		case fc:
			switch {
			case hasByteCount(fc):
				if off+3 > len(b) {
					continue
				}
				size = 5 + int(b[off+2])
			case x.want > 0:
				size = x.want
			default:
				continue
			}
		default:
			continue
		}
		if off+size > len(b) {
			continue
		}
		f := b[off : off+size]
		if !crcOK(f) {
			if off == x.body && x.acc == nil {
				x.badCRC = true
			}
			continue
		}
		if x.t.line && x.readAt(off+size-1).Before(x.open.Add(time.Duration(size)*x.t.char)) {
			continue // complete before the slave could have answered: not the answer
		}
		if b[off+1] == fc && x.want > 0 && size != x.want {
			if x.acc == nil {
				x.odd = size
			}
			continue
		}
		return off, size
	}
	return -1, 0
}

func (x *exchange) readAt(i int) time.Time { return x.start.Add(x.t.rx.at[i]) }

// compact makes room in a full buffer: the bytes already searched after
// an answer, or else the oldest, are dropped.
func (x *exchange) compact() {
	rx := &x.t.rx
	shift := rx.n - rtuMaxADU
	if x.acc != nil && x.pos > 0 {
		shift = x.pos
	}
	copy(rx.b[:], rx.b[shift:rx.n])
	copy(rx.at[:], rx.at[shift:rx.n])
	rx.n -= shift
	x.body, x.pos = max(0, x.body-shift), max(0, x.pos-shift)
	x.accEnd = max(1, x.accEnd-shift)
	x.echoDone = true
}

// failure is the error of an exchange that found no answer in time.
func (x *exchange) failure() error {
	t, n := x.t, x.t.rx.n
	switch {
	case x.badCRC:
		return fmt.Errorf("%w in reply", ErrCRC)
	case x.odd > 0:
		return fmt.Errorf("%w: reply of %d bytes to a request that implies %d", ErrFrame, x.odd, x.want)
	case t.echo == EchoOn && !x.echoed:
		return fmt.Errorf("%w: no reply and no echo in %v (is the adapter really echoing? buses[].echo)", ErrTimeout, t.timeout)
	case x.echoed && n == len(x.req):
		return fmt.Errorf("%w: no reply in %v (only the adapter's echo came back)", ErrTimeout, t.timeout)
	case n > 0:
		return fmt.Errorf("%w: no valid reply in %v (%d bytes of other frames or noise discarded)", ErrTimeout, t.timeout, n)
	}
	return fmt.Errorf("%w: no reply in %v", ErrTimeout, t.timeout)
}
