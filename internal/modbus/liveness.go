package modbus

import "time"

// StallFactor is how many bus timeouts a transaction may stay in flight
// before the bus counts as stalled (Stalled): a transaction the transport
// bounds by its timeout never gets there, so a stall means the bus
// goroutine is stuck inside the transport or the driver.
const StallFactor = 3

// Liveness says whether the bus goroutine makes progress. Times are read
// from the Poller's clock (Options.Clock; the wall clock by default).
type Liveness struct {
	// InFlight is when the transaction now on the bus (or the attempt to
	// open the link) started; zero when none is in flight.
	InFlight time.Time
	// LastDone is when the last transaction or open attempt ended, with a
	// reply, an error or a timeout; zero before the first.
	LastDone time.Time
}

// Liveness returns the liveness stamps. Safe for concurrent use.
func (p *Poller) Liveness() Liveness {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live
}

// Timeout returns the bus's per-transaction timeout (config.Bus.Timeout,
// or config.DefaultTCPTimeout / DefaultRTUTimeout).
func (p *Poller) Timeout() time.Duration { return p.timeout }

// Stalled reports whether a transaction has been in flight at now for
// longer than StallFactor × Timeout. Safe for concurrent use; now must
// come from the Poller's clock. A supervisor turns a stall into fault
// readings for the bus's sensors and calls Interrupt.
func (p *Poller) Stalled(now time.Time) bool {
	l := p.Liveness()
	return !l.InFlight.IsZero() && now.Sub(l.InFlight) > StallFactor*p.timeout
}

// Interrupt closes the current link from another goroutine, so that a
// transaction stuck in the transport returns; the poller then treats the
// link as failed (its sensors read fault: bus down) and reopens it as
// after any link failure. It does nothing while the bus is down or being
// opened. Safe for concurrent use; it returns when the link's close does
// (at once once client.close is safe to call during a transaction).
func (p *Poller) Interrupt() {
	if p.closeLink() {
		p.log.Warn("bus interrupted: link closed under a stalled transaction")
	}
}

// closeLink closes the current link, if any, and marks it interrupted;
// it reports whether there was one.
func (p *Poller) closeLink() bool {
	p.mu.Lock()
	ln := p.link
	if ln != nil {
		p.interrupted.Store(true)
	}
	p.mu.Unlock()
	if ln == nil {
		return false
	}
	if err := ln.close(); err != nil {
		p.log.Debug("close interrupted link", "err", err)
	}
	return true
}
