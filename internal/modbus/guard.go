package modbus

import (
	"errors"
	"time"
)

// The late-reply guard (RTU). Modbus RTU has no transaction id: a reply
// that comes after its request timed out can be taken for the answer to
// the next request sent to the same slave with the same function code
// (the transport flushes the line before each request, so only a reply
// arriving after that next request was sent can be). A backoff after a
// single timeout used to keep that from happening; now that a slave is
// backed off only after fault_after silent polls and a missed reply is
// retried at once, a read that timed out holds the other reads of the same
// table (function code) to that slave for one timeout, and its retry,
// sent while the guard holds, extends it to one timeout after its own end.
// This covers one late reply (a slave that sometimes answers just after
// the timeout), not a slave that is always later than the timeout: the
// bus timeout must exceed the slowest reply of its slaves, as with any RTU
// master. Not held: the identical request (its retry, or its next poll: a
// late reply to it carries the same registers, read at most a couple of
// timeouts earlier), writes
// (a read's late reply does not match their function code, and goburrow
// checks a write echo's address and value), reads of another table, and
// the one-shot Read (it is counted in the guard, not held by it). TCP
// needs no guard: its transaction id tells a late reply apart.

// errLateReply is the reason of a read held by the late-reply guard; it
// counts as a missed reply.
var errLateReply = errors.New("not sent: a late reply to an earlier request of this slave may still arrive")

// lateGuard is one table's late-reply guard of a slave.
type lateGuard struct {
	until time.Time
	rq    request // the read that timed out
}

// held reports whether read rq must wait for its slave's late-reply
// guard at now, and until when.
func (p *Poller) held(rq request, now time.Time) (time.Time, bool) {
	if p.bus.Protocol != "rtu" || rq.write {
		return time.Time{}, false
	}
	st := p.slaves[rq.slave]
	if st == nil {
		return time.Time{}, false
	}
	g := st.guards[rq.table]
	if g == nil || !now.Before(g.until) || sameRead(rq, g.rq) {
		return time.Time{}, false
	}
	return g.until, true
}

// guard updates the late-reply guard after read rq, sent at sent, ended
// at end with err; retry says rq is the retry of a read that timed out.
func (p *Poller) guard(rq request, sent, end time.Time, err error, retry bool) {
	if p.bus.Protocol != "rtu" || rq.write {
		return
	}
	st := p.slave(rq.slave)
	g := st.guards[rq.table]
	switch {
	case errors.Is(err, ErrTimeout):
		if st.guards == nil {
			st.guards = map[string]*lateGuard{}
		}
		st.guards[rq.table] = &lateGuard{until: end.Add(p.timeout), rq: rq}
	case retry && g != nil && sent.Before(g.until):
		g.until = end.Add(p.timeout)
	}
}

func sameRead(a, b request) bool {
	return a.slave == b.slave && a.table == b.table && a.addr == b.addr && a.count == b.count
}
