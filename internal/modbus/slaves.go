package modbus

import (
	"errors"
	"time"

	"github.com/hazmon/hazmon/internal/config"
)

// slaveState is the backoff of a slave that stopped answering. The bus
// goroutine owns it.
type slaveState struct {
	threshold int       // silent polls in a row before backing off: the smallest fault_after of the slave's sensors
	fails     int       // polls in a row without a reply (timeout, exception 10/11), each after its retry
	until     time.Time // left alone until then

	guards map[string]*lateGuard // RTU late-reply guard, by table (guard.go)
}

// slave returns the state of slave id, creating it.
func (p *Poller) slave(id byte) *slaveState {
	st := p.slaves[id]
	if st == nil {
		st = &slaveState{}
		p.slaves[id] = st
	}
	return st
}

// backedOff reports whether the slave is left alone at now.
func (st *slaveState) backedOff(now time.Time) bool {
	return st != nil && now.Before(st.until)
}

// noteSlave updates a slave's backoff after a poll of it (retry included)
// or a one-shot request ended with err at now: a silent poll (no reply, or
// a gateway saying the unit did not answer) counts, and from the
// threshold-th in a row on the slave is left alone for SlaveBackoffMin,
// doubling per further silent poll up to SlaveBackoffMax; any reply, even
// an exception, a CRC error or a busy reply, shows the slave alive.
func (p *Poller) noteSlave(id byte, err error, now time.Time) {
	switch {
	case errors.Is(err, ErrBusDown):
	case silent(err):
		st := p.slave(id)
		th := st.threshold
		if th == 0 {
			th = config.DefaultFaultAfter
		}
		st.fails++
		if st.fails >= th {
			back := min(SlaveBackoffMin<<min(st.fails-th, 16), SlaveBackoffMax)
			st.until = now.Add(back)
			p.log.Debug("slave not answering, backing off", "slave", id, "polls", st.fails, "backoff", back)
		}
	default:
		if st := p.slaves[id]; st != nil {
			st.fails, st.until = 0, time.Time{}
		}
	}
}

// silent reports whether err says no reply came from the slave: a
// timeout, or exception 10/11 from a gateway (path unavailable, target
// failed to respond).
func silent(err error) bool {
	var ee *ExceptionError
	return errors.Is(err, ErrTimeout) || errors.As(err, &ee) && fromGateway(ee)
}

// fromGateway reports whether the exception is a gateway's (10: path
// unavailable, 11: target device failed to respond): the unit behind it
// did not answer.
func fromGateway(e *ExceptionError) bool {
	return e.Code == ExGatewayPathUnavail || e.Code == ExGatewayTargetFailed
}

// missed reports whether a read's err is a missed reply, a communication
// failure that may be transient (faulted only after fault_after polls in
// a row): no reply, a gateway's 10/11, a CRC error, a malformed frame, or
// a slave still busy after the busy retries, or a read held by the
// late-reply guard. Other exceptions are facts
// about the request (fault at once), and ErrBusDown is the link (fault at
// once).
func missed(err error) bool {
	if err == nil || errors.Is(err, ErrBusDown) {
		return false
	}
	var ee *ExceptionError
	if errors.As(err, &ee) {
		return fromGateway(ee) || ee.Busy()
	}
	return errors.Is(err, ErrTimeout) || errors.Is(err, ErrCRC) || errors.Is(err, ErrFrame) || errors.Is(err, errLateReply)
}

// retryable reports whether a missed reply is worth one more request at
// once (a busy slave has had its retries).
func retryable(err error) bool { return missed(err) && !isBusy(err) }
