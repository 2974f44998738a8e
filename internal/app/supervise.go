package app

import (
	"context"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
	"github.com/hazmon/hazmon/internal/sdnotify"
)

// SuperviseEvery is the bus supervisor's shortest sleep, and its period
// while a bus is stalled: a stall is seen at most this late.
const SuperviseEvery = 100 * time.Millisecond

// SuperviseIdle is the bus supervisor's longest sleep, when no transaction
// can stall sooner (a reload wakes it at once).
const SuperviseIdle = time.Second

// stallable is what the supervisor needs of a bus poller: whether a
// transaction has been in flight for longer than 3 × the bus timeout, when
// the one in flight started and that timeout (to sleep until a stall can
// first be seen), and a way to close its link from outside so the
// transaction returns and the poller reopens the bus.
type stallable interface {
	Stalled(now time.Time) bool
	Liveness() modbus.Liveness
	Timeout() time.Duration
	Interrupt()
}

// lastReader is what the watchdog needs of a GPIO input: when its loop
// last ran.
type lastReader interface {
	LastRead() time.Time
}

// superviseSleep is how long the supervisor may sleep after looking at
// buses at now: until the first instant a transaction in flight counts as
// stalled or, with none in flight, StallFactor × the bus timeout (one that
// starts now stalls no sooner); SuperviseEvery while one is stalled. It is
// kept within [SuperviseEvery, SuperviseIdle], so a stall is never seen
// later than when the supervisor looked every SuperviseEvery, and usually
// at once.
func superviseSleep(now time.Time, buses []stallable) time.Duration {
	d := SuperviseIdle
	for _, b := range buses {
		limit := modbus.StallFactor * b.Timeout()
		if b.Stalled(now) {
			return SuperviseEvery
		}
		if start := b.Liveness().InFlight; !start.IsZero() {
			limit = start.Add(limit).Sub(now) + time.Nanosecond // Stalled is strictly after
		}
		d = min(d, limit)
	}
	return max(d, SuperviseEvery)
}

// supervise watches every bus until ctx ends. A bus stalled inside a
// transaction has its sensors reported as faults ("bus stalled", code
// stalled) at each
// of their intervals — so the rules cut what those sensors control, through
// the outputs' own lanes — and its link is interrupted so the poller
// reopens it. It sleeps between looks as superviseSleep says; a reload
// (a.superWake) wakes it to look at the new buses.
func (a *App) supervise(ctx context.Context) {
	t := time.NewTimer(SuperviseEvery)
	defer t.Stop()
	faulted := map[string]time.Time{} // sensor → last fault reported
	stalled := map[string]bool{}      // bus → stall reported
	var buses []stallable
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.superWake:
		}
		now := time.Now()
		p := a.current()
		buses = buses[:0]
		for name, bp := range p.pollers {
			s, ok := any(bp.poller).(stallable)
			if ok {
				buses = append(buses, s)
			}
			if !ok || !s.Stalled(now) {
				if stalled[name] {
					a.log.Info("bus no longer stalled", "bus", name)
					delete(stalled, name)
				}
				continue
			}
			if !stalled[name] {
				stalled[name] = true
				a.log.Error("bus stalled inside a transaction: its sensors are faults, reopening the link", "bus", name)
				s.Interrupt()
			}
			for _, sc := range bp.sensors {
				iv := sc.Interval.D()
				if iv <= 0 {
					iv = time.Second
				}
				if now.Sub(faulted[sc.ID]) < iv {
					continue
				}
				faulted[sc.ID] = now
				a.super.Offer(stallFault(name, sc, now))
			}
		}
		t.Reset(superviseSleep(time.Now(), buses))
	}
}

// stallFault is the fault reading of sensor sc of a stalled bus.
func stallFault(bus string, sc config.Sensor, now time.Time) reading.Reading {
	return reading.Reading{Sensor: sc.ID, Type: sc.Type, Unit: sc.Unit, Time: now.Round(0), Status: reading.StatusFault,
		Err: "bus " + bus + " stalled: no transaction completed within 3 × its timeout", Code: reading.CodeStalled}
}

// live reports whether the safety core's loop ran recently (loopLive)
// and no source is stalled: the systemd watchdog is fed only then.
func (a *App) live(now time.Time, d time.Duration) bool {
	if !loopLive(now.Sub(a.core.LastLoop()), d) {
		return false
	}
	p := a.current()
	for _, bp := range p.pollers {
		if s, ok := any(bp.poller).(stallable); ok && s.Stalled(now) {
			return false
		}
	}
	for _, ip := range p.inputs {
		if l, ok := any(ip.in).(lastReader); ok && now.Sub(l.LastRead()) > d+time.Second {
			return false
		}
	}
	return true
}

// loopLive reports whether a safety core loop that last ran age ago is
// live for a watchdog that allows d: the loop runs every
// safety.IdleTickEvery when idle, so d counts as at least IdleTickEvery +
// TickEvery (with WatchdogSec=1s, d = 500 ms would miss idle loops).
func loopLive(age, d time.Duration) bool {
	return age <= max(d, safety.IdleTickEvery+safety.TickEvery)
}

// watchdog pings systemd's watchdog at half its interval while the safety
// core's loop and every source are live; a hung core or a stalled bus stops
// the pings and systemd restarts the agent.
func (a *App) watchdog(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if a.live(time.Now(), interval/2) {
				if err := sdnotify.Watchdog(); err != nil && a.errLog.allow() {
					a.log.Warn("sd_notify watchdog", "err", err)
				}
			}
		}
	}
}
