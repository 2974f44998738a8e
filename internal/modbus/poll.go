package modbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// pollGroup reads one request's sensors (merged, or one by one while the
// group is split) and emits their readings. It returns an error only if
// the link failed.
func (p *Poller) pollGroup(ctx context.Context, ln link, g *group, now time.Time) error {
	if st := p.slaves[g.slave]; st.backedOff(now) {
		p.failed(g.members, now, p.backoffErr(g.slave, st, now))
		return nil
	}
	merged := len(g.members) > 1
	if merged && !g.splitUntil.IsZero() && !now.Before(g.splitUntil) {
		g.splitUntil = time.Time{}
		p.addSplit(-1)
	}
	if !merged || g.splitUntil.IsZero() {
		data, wire, err := p.poll(ctx, ln, g, g.members, request{slave: g.slave, table: g.table, addr: g.addr, count: g.count})
		g.observe(wire)
		// A write queued during the read goes before its processing.
		linkErr := p.boundary(ctx, ln)
		if err == nil {
			for _, pt := range g.members {
				p.emitValue(pt, now, data, g.addr)
			}
			return linkErr
		}
		if !merged || !splittable(err) {
			if merged {
				err = fmt.Errorf("bus %s: slave %d: read %s %d..%d: %w", p.bus.Name, g.slave, g.table, g.addr, g.addr+g.count-1, err)
			} else {
				err = fmt.Errorf("bus %s: slave %d: read %s %d: %w", p.bus.Name, g.slave, g.table, g.addr, err)
			}
			p.failed(g.members, now, err)
			if errors.Is(err, ErrBusDown) {
				return err
			}
			return linkErr
		}
		if linkErr != nil {
			p.failed(g.members, now, linkErr)
			return linkErr
		}
		// The slave refused the merged read (e.g. an unmapped register in
		// a gap): read the sensors one by one for a while.
		g.splitUntil = now.Add(SplitHold)
		p.addSplit(1)
		p.log.Warn("exception to a coalesced read; reading its sensors one by one",
			"slave", g.slave, "table", g.table, "addr", g.addr, "count", g.count, "err", err, "for", SplitHold)
	}
	var total time.Duration
	for i, pt := range g.members {
		if i > 0 {
			if err := p.boundary(ctx, ln); err != nil {
				p.failed(g.members[i:], now, err)
				return err
			}
		}
		if st := p.slaves[pt.slave]; st.backedOff(now) {
			p.failed(g.members[i:i+1], now, p.backoffErr(pt.slave, st, now))
			continue
		}
		rq := request{slave: pt.slave, table: pt.table, addr: pt.addr, count: pt.count}
		if _, held := p.held(rq, p.clock.Now()); held {
			// A neighbour's read timed out: the rest wait for the next poll.
			p.failed(g.members[i:], now, fmt.Errorf("bus %s: slave %d: read %s %d: %w", p.bus.Name, pt.slave, pt.table, pt.addr, errLateReply))
			break
		}
		data, wire, err := p.poll(ctx, ln, g, g.members[i:i+1], rq)
		total += wire
		if err != nil {
			err = fmt.Errorf("bus %s: slave %d: read %s %d: %w", p.bus.Name, pt.slave, pt.table, pt.addr, err)
			p.failed(g.members[i:i+1], now, err)
			if errors.Is(err, ErrBusDown) {
				p.failed(g.members[i+1:], now, err)
				return err
			}
			continue
		}
		p.emitValue(pt, now, data, pt.addr)
	}
	g.observe(total)
	return nil
}

// poll runs one read of g for members, and when its reply was missed
// retries it once at once, provided no member would become faulty by this
// failure (the retry would delay that fault past fault_after's bound) and
// the retry, even if it times out, ends before the next on-time tick
// (fits), after the writes queued meanwhile. It then updates the slave's
// backoff.
func (p *Poller) poll(ctx context.Context, ln link, g *group, members []*point, rq request) ([]byte, time.Duration, error) {
	sent := p.clock.Now()
	data, held, err := p.transact(ctx, ln, rq, true)
	p.guard(rq, sent, p.clock.Now(), err, false)
	if retryable(err) && ctx.Err() == nil && !deciding(members) {
		if werr := p.boundary(ctx, ln); werr != nil {
			return nil, held, werr
		}
		if sent = p.clock.Now(); fits(p.groups, g, sent, p.timeout+g.cost) {
			p.mu.Lock()
			p.stats.Retries++
			p.mu.Unlock()
			var more time.Duration
			data, more, err = p.transact(ctx, ln, rq, true)
			held += more
			p.guard(rq, sent, p.clock.Now(), err, true)
		}
	}
	p.noteSlave(rq.slave, err, p.clock.Now())
	return data, held, err
}

// deciding reports whether one more failed poll makes a member faulty.
func deciding(members []*point) bool {
	for _, pt := range members {
		if pt.fails+1 >= pt.faultAfter {
			return true
		}
	}
	return false
}

// splittable reports whether an exception to a merged read is about the
// request (an address in a gap), so that reading its sensors one by one
// may succeed: any exception but busy (6) and the gateway's 10/11.
func splittable(err error) bool {
	var ee *ExceptionError
	return errors.As(err, &ee) && !ee.Busy() && !fromGateway(ee)
}

// backoffErr is the fault reason of a read skipped because its slave is
// backed off.
func (p *Poller) backoffErr(slave byte, st *slaveState, now time.Time) error {
	return fmt.Errorf("bus %s: slave %d: %w: not answering, %d polls in a row, next try in %v",
		p.bus.Name, slave, ErrTimeout, st.fails, st.until.Sub(now).Round(time.Millisecond))
}

// failed handles a poll of members that failed with err at tick at: a
// missed reply counts against each member's fault_after and emits a fault
// only for the members that reached it (the others keep their last
// reading; the poll counts in MissedPolls); a link that is down, or a
// reply that is a fact (an exception), emits a fault for every member at
// once.
func (p *Poller) failed(members []*point, at time.Time, err error) {
	if len(members) == 0 {
		return
	}
	if !missed(err) {
		down := errors.Is(err, ErrBusDown)
		for _, pt := range members {
			if down {
				pt.fails = max(pt.fails, pt.faultAfter)
			} else {
				pt.fails = 0 // the slave answered
			}
			p.emitFault(pt, at, err)
		}
		return
	}
	withheld := false
	for _, pt := range members {
		pt.fails++
		if pt.fails >= pt.faultAfter {
			p.emitFault(pt, at, err)
		} else {
			withheld = true
		}
	}
	if withheld {
		p.mu.Lock()
		p.stats.MissedPolls++
		p.mu.Unlock()
	}
}

// observe folds the wire time of one poll into the group's cost estimate.
func (g *group) observe(wire time.Duration) {
	if g.cost == 0 {
		g.cost = wire
		return
	}
	g.cost += (wire - g.cost) / 5
}

// emitValue decodes pt from data (read from address base) and emits it;
// a value that cannot be trusted (NaN, no-value code, out of range) is a
// fault at once.
func (p *Poller) emitValue(pt *point, at time.Time, data []byte, base uint16) {
	pt.fails = 0
	v, err := pt.value(data, base)
	if err != nil {
		p.emitFault(pt, at, err)
		return
	}
	p.emit(reading.Reading{Sensor: pt.cfg.ID, Type: pt.cfg.Type, Unit: pt.cfg.Unit,
		Time: at.Round(0), Value: v, Status: reading.StatusNormal})
}

// emitFault emits a fault reading of pt: err's text and its FaultCode.
func (p *Poller) emitFault(pt *point, at time.Time, err error) {
	p.emit(reading.Reading{Sensor: pt.cfg.ID, Type: pt.cfg.Type, Unit: pt.cfg.Unit,
		Time: at.Round(0), Status: reading.StatusFault, Err: err.Error(), Code: FaultCode(err)})
}
