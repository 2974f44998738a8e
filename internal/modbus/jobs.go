package modbus

import (
	"context"
	"errors"
	"fmt"
)

// job is a one-shot request queued onto the bus goroutine: a coil write
// (Poller.writes) or a read (Poller.probes).
type job struct {
	ctx   context.Context
	slave byte
	table string
	addr  uint16
	count uint16
	write bool // WriteCoil: set coil addr to on
	on    bool
	reply chan jobResult // buffered, 1
}

type jobResult struct {
	data []byte
	err  error
}

// Read is a one-shot read of count registers (holding, input; 2 bytes
// each, big-endian) or bits (coil, discrete; packed LSB first) at the
// 0-based address addr of slave, queued onto the bus goroutine and run
// before the next poll (after the queued writes). Errors are those of a
// poll, ctx.Err(), or ErrClosed once Run has returned.
func (p *Poller) Read(ctx context.Context, slave byte, table string, addr, count uint16) ([]byte, error) {
	switch table {
	case TableHolding, TableInput, TableCoil, TableDiscrete:
	default:
		return nil, fmt.Errorf("bus %s: table %q (want holding, input, coil or discrete)", p.bus.Name, table)
	}
	r := p.submit(ctx, p.probes, &job{ctx: ctx, slave: slave, table: table, addr: addr, count: count})
	return r.data, r.err
}

// WriteCoil sets coil addr of slave on or off (FC05). Writes have their
// own queue, run ahead of everything else at every transaction boundary:
// a write waits for at most the one transaction in flight (and the writes
// queued before it), also while a split request is read sensor by sensor
// or a busy slave is waited out, and is answered with the bus-down error
// at once while the bus is down. It is sent even to a slave that is
// backed off. A write still queued when ctx ends is dropped; one already
// on the wire completes.
func (p *Poller) WriteCoil(ctx context.Context, slave byte, addr uint16, on bool) error {
	return p.submit(ctx, p.writes, &job{ctx: ctx, slave: slave, table: TableCoil, addr: addr, write: true, on: on}).err
}

func (p *Poller) submit(ctx context.Context, q chan<- *job, j *job) jobResult {
	j.reply = make(chan jobResult, 1)
	select {
	case q <- j:
	case <-ctx.Done():
		return jobResult{err: ctx.Err()}
	case <-p.done:
		return jobResult{err: fmt.Errorf("bus %s: %w", p.bus.Name, ErrClosed)}
	}
	select {
	case r := <-j.reply:
		return r
	case <-ctx.Done():
		return jobResult{err: ctx.Err()}
	case <-p.done:
		// Run may have answered just before returning.
		select {
		case r := <-j.reply:
			return r
		default:
			return jobResult{err: fmt.Errorf("bus %s: %w", p.bus.Name, ErrClosed)}
		}
	}
}

// failQueued answers the jobs left in the queues when Run returns.
func (p *Poller) failQueued() {
	for {
		select {
		case j := <-p.writes:
			j.reply <- jobResult{err: fmt.Errorf("bus %s: %w", p.bus.Name, ErrClosed)}
		case j := <-p.probes:
			j.reply <- jobResult{err: fmt.Errorf("bus %s: %w", p.bus.Name, ErrClosed)}
		default:
			return
		}
	}
}

// boundary is what runs between two transactions: it reports a link that
// Interrupt closed (an error wrapping ErrBusDown), and runs the coil writes
// already queued, without waiting for more. It returns an error only if
// the link is down.
func (p *Poller) boundary(ctx context.Context, ln link) error {
	for {
		if p.interrupted.Load() {
			return fmt.Errorf("bus %s: %w: link closed by Interrupt (a transaction stalled)", p.bus.Name, ErrBusDown)
		}
		select {
		case j := <-p.writes:
			if err := p.runJob(ctx, ln, j); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// runJob runs a one-shot request; it returns an error only if the link
// failed.
func (p *Poller) runJob(ctx context.Context, ln link, j *job) error {
	if err := j.ctx.Err(); err != nil {
		j.reply <- jobResult{err: err}
		return nil
	}
	rq := request{slave: j.slave, table: j.table, addr: j.addr, count: j.count, write: j.write, on: j.on}
	sent := p.clock.Now()
	data, _, err := p.transact(ctx, ln, rq, !j.write)
	p.guard(rq, sent, p.clock.Now(), err, false)
	p.noteSlave(j.slave, err, p.clock.Now())
	if err != nil {
		if j.write {
			err = fmt.Errorf("bus %s: slave %d: write coil %d: %w", p.bus.Name, j.slave, j.addr, err)
		} else {
			err = fmt.Errorf("bus %s: slave %d: read %s %d: %w", p.bus.Name, j.slave, j.table, j.addr, err)
		}
	}
	j.reply <- jobResult{data: data, err: err}
	if errors.Is(err, ErrBusDown) {
		return err
	}
	return nil
}
