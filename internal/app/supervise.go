package app

import (
	"context"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/sdnotify"
)

// SuperviseEvery is how often the bus supervisor looks at every source.
const SuperviseEvery = 100 * time.Millisecond

// stallable is what the supervisor needs of a bus poller: whether a
// transaction has been in flight for longer than 3 × the bus timeout, and
// a way to close its link from outside so the transaction returns and the
// poller reopens the bus.
type stallable interface {
	Stalled(now time.Time) bool
	Interrupt()
}

// lastReader is what the watchdog needs of a GPIO input: when its loop
// last ran.
type lastReader interface {
	LastRead() time.Time
}

// supervise watches every bus until ctx ends. A bus stalled inside a
// transaction has its sensors reported as faults ("bus stalled", code
// stalled) at each
// of their intervals — so the rules cut what those sensors control, through
// the outputs' own lanes — and its link is interrupted so the poller
// reopens it.
func (a *App) supervise(ctx context.Context) {
	t := time.NewTicker(SuperviseEvery)
	defer t.Stop()
	faulted := map[string]time.Time{} // sensor → last fault reported
	stalled := map[string]bool{}      // bus → stall reported
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		p := a.current()
		for name, bp := range p.pollers {
			s, ok := any(bp.poller).(stallable)
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
	}
}

// stallFault is the fault reading of sensor sc of a stalled bus.
func stallFault(bus string, sc config.Sensor, now time.Time) reading.Reading {
	return reading.Reading{Sensor: sc.ID, Type: sc.Type, Unit: sc.Unit, Time: now.Round(0), Status: reading.StatusFault,
		Err: "bus " + bus + " stalled: no transaction completed within 3 × its timeout", Code: reading.CodeStalled}
}

// live reports whether the safety core's loop ran within the last d and
// no source is stalled: the systemd watchdog is fed only then.
func (a *App) live(now time.Time, d time.Duration) bool {
	if now.Sub(a.core.LastLoop()) > d {
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
