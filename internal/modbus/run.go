package modbus

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Run polls the bus until ctx ends, reconnecting with backoff while the bus
// is down. It returns nil when ctx ends (closing the link, so that a
// transaction stuck in the transport does not hold it), or an error if
// called twice.
func (p *Poller) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return fmt.Errorf("bus %s: Run called twice", p.bus.Name)
	}
	defer close(p.done)
	defer p.failQueued()
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { p.closeLink(); close(closed) })
	defer func() {
		if !stop() {
			<-closed
		}
	}()

	p.begin(p.clock.Now())
	backoff := ReconnectMin
	wasUp := true // log the first failure
	for ctx.Err() == nil {
		ln, err := p.connect()
		if err != nil {
			err = fmt.Errorf("bus %s: %w", p.bus.Name, err)
			p.setDown(err)
			if wasUp {
				p.log.Warn("bus down, reconnecting with backoff", "err", err)
				wasUp = false
			}
			p.whileDown(ctx, p.clock.Now().Add(jitter(backoff)), err)
			backoff = min(2*backoff, ReconnectMax)
			continue
		}
		p.mu.Lock()
		p.stats.Connected = true
		p.mu.Unlock()
		p.log.Info("bus up", "sensors", len(p.points), "reads", len(p.groups))
		replies := p.replies
		err = p.serve(ctx, ln)
		p.mu.Lock()
		p.link = nil
		p.mu.Unlock()
		ln.close()
		if err == nil {
			continue // ctx ended
		}
		p.setDown(err)
		if p.replies > replies {
			// The link worked: reopen at once.
			backoff, wasUp = ReconnectMin, true
			p.log.Warn("bus link failed, reopening", "err", err)
			continue
		}
		// Opened but never answered: back off as if the open had failed,
		// so a port that opens and fails at once is not reopened in a loop.
		if wasUp {
			p.log.Warn("bus link failed before any reply, reconnecting with backoff", "err", err)
			wasUp = false
		}
		p.whileDown(ctx, p.clock.Now().Add(jitter(backoff)), err)
		backoff = min(2*backoff, ReconnectMax)
	}
	p.mu.Lock()
	p.stats.Connected = false
	p.mu.Unlock()
	return nil
}

// begin starts every read's grid, and the rate windows, at now.
func (p *Poller) begin(now time.Time) {
	for _, g := range p.groups {
		g.start, g.next = now, now
	}
	p.mu.Lock()
	p.meter.reset(now)
	p.mu.Unlock()
}

// jitter returns d ±20 %.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// connect opens the link (stamped in the liveness as a transaction in
// flight) and makes it the one Interrupt closes.
func (p *Poller) connect() (link, error) {
	t0 := p.clock.Now()
	p.mu.Lock()
	p.live.InFlight = t0
	p.mu.Unlock()
	raw, err := p.dial(p.bus)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live.InFlight, p.live.LastDone = time.Time{}, p.clock.Now()
	if err != nil {
		return nil, err
	}
	ln := &onceClosed{link: raw}
	p.link = ln
	p.interrupted.Store(false)
	return ln, nil
}

// whileDown waits until until (or ctx's end), answering queued jobs with
// the bus-down error at once and emitting a fault reading (cause) for
// every sensor at each of its ticks.
func (p *Poller) whileDown(ctx context.Context, until time.Time, cause error) {
	timer := p.clock.NewTimer(0)
	defer timer.Stop()
	for {
		now := p.clock.Now()
		if !now.Before(until) {
			return
		}
		next := until
		if d, ok := nextDue(p.groups); ok && d.Before(next) {
			next = d
		}
		timer.Reset(next.Sub(now))
		select {
		case <-ctx.Done():
			return
		case j := <-p.writes:
			j.reply <- jobResult{err: cause}
		case j := <-p.probes:
			j.reply <- jobResult{err: cause}
		case <-timer.C():
			now = p.clock.Now()
			for g := pick(p.groups, now); g != nil; g = pick(p.groups, now) {
				p.advance(g, now)
				p.failed(g.members, now, cause)
			}
		}
	}
}

// serve polls on an open link until ctx ends (nil) or the link fails (an
// error wrapping ErrBusDown).
func (p *Poller) serve(ctx context.Context, ln link) error {
	timer := p.clock.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		wait, err := p.turn(ctx, ln)
		if err != nil {
			return err
		}
		if wait == 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case j := <-p.writes:
			err = p.runJob(ctx, ln, j)
		case j := <-p.probes:
			err = p.runJob(ctx, ln, j)
		case <-timer.C():
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// turn is one step of serve: the queued writes first, then one queued
// read, else the most urgent due poll (pick). It returns 0 when it did
// something, else how long nothing is due; an error only if the link
// failed.
func (p *Poller) turn(ctx context.Context, ln link) (time.Duration, error) {
	if err := p.boundary(ctx, ln); err != nil {
		return 0, err
	}
	select {
	case j := <-p.probes:
		return 0, p.runJob(ctx, ln, j)
	default:
	}
	now := p.clock.Now()
	if !now.Before(p.nextPlan) {
		p.replan(now)
	}
	if g := pick(p.groups, now); g != nil {
		if until, held := p.held(g.firstRequest(), now); held {
			g.next = until // deferred past the late-reply guard (guard.go), on its grid after
			return 0, nil
		}
		p.advance(g, now)
		return 0, p.pollGroup(ctx, ln, g, now)
	}
	if d, ok := nextDue(p.groups); ok {
		return d.Sub(now), nil
	}
	return time.Hour, nil
}

// advance moves g past now on its grid, counting the ticks skipped.
func (p *Poller) advance(g *group, now time.Time) {
	if skipped := advance(g, now); skipped > 0 {
		p.mu.Lock()
		p.stats.Missed += uint64(skipped)
		p.mu.Unlock()
	}
}

// replan re-plans the schedule (plan), publishes its figures and warns,
// at most every OverloadWarnEvery, when the bus is over-subscribed.
func (p *Poller) replan(now time.Time) {
	p.nextPlan = now.Add(ReplanEvery)
	pl := plan(p.groups)
	over := pl.load > LoadTarget
	p.mu.Lock()
	p.stats.Load = pl.load
	p.stats.Overloaded = over
	p.stats.Stretched = pl.stretched
	p.mu.Unlock()
	if over && now.Sub(p.lastWarn) >= OverloadWarnEvery {
		p.lastWarn = now
		p.log.Warn("bus over-subscribed: on-time sensors kept on their interval, others polled less often",
			"load", math.Round(pl.load*100)/100, "target", LoadTarget, "on_time_load", math.Round(pl.onTimeLoad*100)/100,
			"stretched_sensors", pl.stretched, "stretch", pl.stretch)
	}
}
