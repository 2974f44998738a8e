package modbus

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// request is one transaction: a read of count items of table at addr, or
// (write) FC05 setting coil addr to on.
type request struct {
	slave byte
	table string
	addr  uint16
	count uint16
	write bool
	on    bool
}

// transact runs one request with its busy retries and updates the
// counters and the liveness stamps. It returns the data read and the time
// the request held the bus (retries included). With writesFirst the
// queued coil writes run during the busy waits; if one of them finds the
// link down, that error (wrapping ErrBusDown) is returned.
func (p *Poller) transact(ctx context.Context, ln link, rq request, writesFirst bool) ([]byte, time.Duration, error) {
	var held time.Duration
	for attempt := 0; ; attempt++ {
		t0 := p.clock.Now()
		p.mu.Lock()
		p.live.InFlight = t0
		p.mu.Unlock()
		var data []byte
		var err error
		if rq.write {
			err = ln.writeCoil(rq.slave, rq.addr, rq.on)
		} else {
			data, err = ln.read(rq.slave, rq.table, rq.addr, rq.count)
		}
		end := p.clock.Now()
		rtt := end.Sub(t0)
		wire := p.wire(rq, len(data), err, rtt)
		held += wire
		if err == nil || !silent(err) && !errors.Is(err, ErrBusDown) {
			p.replies++
		}
		p.mu.Lock()
		p.live.InFlight, p.live.LastDone = time.Time{}, end
		p.stats.Requests++
		p.stats.LastRTT = rtt
		if err != nil {
			p.stats.Errors++
			p.stats.LastError = fmt.Sprintf("bus %s: slave %d: %v", p.bus.Name, rq.slave, err)
			if isBusy(err) {
				p.stats.Busy++
			}
			if errors.Is(err, ErrTimeout) {
				p.stats.Timeouts++
			}
		}
		p.meter.add(&p.stats, rtt, wire, end)
		p.mu.Unlock()
		if !isBusy(err) || attempt >= BusyRetries {
			return data, held, err
		}
		if werr := p.busyWait(ctx, ln, BusyWait*time.Duration(attempt+1), writesFirst); werr != nil {
			return nil, held, werr
		}
		if ctx.Err() != nil {
			return nil, held, err
		}
	}
}

// busyWait waits d (or until ctx ends) before a busy retry; with
// writesFirst it runs the coil writes queued meanwhile. It returns an
// error only if such a write found the link down.
func (p *Poller) busyWait(ctx context.Context, ln link, d time.Duration, writesFirst bool) error {
	t := p.clock.NewTimer(d)
	defer t.Stop()
	writes := p.writes
	if !writesFirst {
		writes = nil // a write's own busy wait does not run other writes
	}
	for {
		select { // a queued write goes first, also when the wait is over
		case j := <-writes:
			if err := p.runJob(ctx, ln, j); err != nil {
				return err
			}
			continue
		default:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			return nil
		case j := <-writes:
			if err := p.runJob(ctx, ln, j); err != nil {
				return err
			}
		}
	}
}

// wire is the time a transaction held the bus: on RTU computed from the
// frame sizes (request 8 bytes; reply 5 + data bytes, an exception 5, a
// write echo 8) unless no reply came (then the round trip); on TCP the
// round trip.
func (p *Poller) wire(rq request, n int, err error, rtt time.Duration) time.Duration {
	if p.bus.Protocol != "rtu" {
		return rtt
	}
	var ee *ExceptionError
	switch {
	case err == nil && rq.write:
		return wireTime(p.bus.Baud, 8, 8)
	case err == nil:
		return wireTime(p.bus.Baud, 8, 5+n)
	case errors.As(err, &ee):
		return wireTime(p.bus.Baud, 8, 5)
	}
	return rtt
}
