// Package actuate drives hazmon's safety outputs, wired fail-safe
// (energised = power allowed, de-energised = cut): relays on GPIO lines and
// breaker coils on Modbus slaves. Each output has its own Lane, a goroutine
// that makes the safety Core's latest command true and keeps it true, so a
// cut never waits behind anything but its own output's I/O.
//
// Read-back drift is corrected only toward cut: a coil found energised
// while commanded cut is written cut again; a coil found cut while
// commanded energised (a PLC interlock, an emergency stop, an operator
// opened it) is never energised again by the lane — it reports the
// mismatch to the Core, which latches the output cut until a technician
// restores it.
package actuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/safety"
)

// Timings of a Lane (LaneOptions; zero values take these).
const (
	DefaultRetryMin    = 50 * time.Millisecond // first wait after a failed write or read-back
	DefaultRetryMax    = time.Second           // cap of the doubling wait between retries
	DefaultVerifyEvery = time.Second           // coil read-back period once it holds
	DefaultOpTimeout   = safety.MaxCutoffDelay // bound of one write + read-back, bus queue included
)

// LaneOptions are a lane's report function, log and timings.
type LaneOptions struct {
	// Report receives every attempt's outcome (safety.Core.Observe). It
	// must not block.
	Report func(safety.Observation)
	// Log receives write failures and recoveries (default: discarded).
	Log         *slog.Logger
	RetryMin    time.Duration
	RetryMax    time.Duration
	VerifyEvery time.Duration
	OpTimeout   time.Duration
}

func (o *LaneOptions) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&o.RetryMin, DefaultRetryMin)
	set(&o.RetryMax, DefaultRetryMax)
	set(&o.VerifyEvery, DefaultVerifyEvery)
	set(&o.OpTimeout, DefaultOpTimeout)
	if o.Report == nil {
		o.Report = func(safety.Observation) {}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Lane is one output's goroutine (Run). Command and EmergencyCut never
// block; Close cuts and waits for the confirmation.
type Lane struct {
	name string
	desc string // "gpio chip gpiochip0 line 17" or "bus b1 slave 3 coil 10"
	drv  driver
	hb   *heartbeat // nil: no heartbeat
	opt  LaneOptions
	log  *slog.Logger

	wake chan struct{} // cap 1
	mu   sync.Mutex
	cmd  safety.Command
	// closing: Close or EmergencyCut has begun; the lane writes cut
	// whatever the command, forever.
	closing bool
	// closedCut: an attempt begun after closing confirmed the output cut
	// (what Close waits for; an earlier confirmation may be stale).
	closedCut bool
	progress  chan struct{} // closed and replaced after every attempt
}

// Name returns the output's name.
func (l *Lane) Name() string { return l.name }

// Describe returns where the output is ("bus io slave 3 coil 12").
func (l *Lane) Describe() string { return l.desc }

// Command records the Core's latest wish and wakes the lane.
func (l *Lane) Command(c safety.Command) {
	l.mu.Lock()
	l.cmd = c
	l.mu.Unlock()
	l.poke()
}

func (l *Lane) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// EmergencyCut makes the lane cut its output for good, at once: a GPIO
// line is written here, on the caller's goroutine; a coil is written by
// the lane's goroutine as soon as its bus lets it. Used when the agent
// panics or stops.
func (l *Lane) EmergencyCut() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	if g, ok := l.drv.(*gpioDriver); ok {
		_, _ = g.set(context.Background(), false)
	}
	l.poke()
}

// Close cuts the output for good and waits until it is confirmed cut (GPIO
// written, coil read back 0) or ctx ends; the error then says so. The
// lane's Run must still be running (and, for a coil, its bus poller).
func (l *Lane) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.poke()
	for {
		l.mu.Lock()
		done, progress := l.closedCut, l.progress
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return fmt.Errorf("output %s (%s): not confirmed cut: %w", l.name, l.desc, ctx.Err())
		}
	}
}

// Run makes the commanded state true and keeps it true until ctx ends.
func (l *Lane) Run(ctx context.Context) error {
	log := l.log
	retry := l.opt.RetryMin
	var (
		doneGen  uint64 // the generation written and confirmed
		haveDone bool
		latched  uint64 // a generation found cut by something else: never energised
		lastErr  string
		lastBeat uint64
		hbErr    string
	)
	for ctx.Err() == nil {
		l.mu.Lock()
		cmd, closing := l.cmd, l.closing
		l.mu.Unlock()
		energise := !cmd.Cut && !closing
		if energise && latched == cmd.Gen && latched != 0 {
			energise = false // wait for the Core's next command
		}
		actx, cancel := context.WithTimeout(ctx, l.opt.OpTimeout)
		var st state
		var err error
		mismatch := false
		if haveDone && doneGen == cmd.Gen && !closing {
			st, err = l.drv.check(actx, energise)
			if !energise && errors.Is(err, errMismatch) { // found energised while cut: correct toward cut
				log.Warn("output found energised while commanded cut: writing it cut again", "err", err)
				st, err = l.drv.set(actx, false)
			}
		} else {
			st, err = l.drv.set(actx, energise)
		}
		if energise && errors.Is(err, errMismatch) {
			// Commanded on and reading back cut, whether found so later or
			// right after an acknowledged write: something else holds it
			// cut (a PLC interlock, an emergency stop, an operator).
			// Writing it on again would fight that system and cycle the
			// breaker.
			mismatch, latched = true, cmd.Gen
			log.Warn("output found cut while commanded on: not energising it again", "err", err)
		}
		if l.hb != nil && cmd.Beat != lastBeat && err == nil {
			herr := l.hb.toggle(actx)
			switch {
			case herr != nil && herr.Error() != hbErr:
				log.Warn("heartbeat write failed", "err", herr)
				hbErr = herr.Error()
			case herr == nil:
				hbErr = ""
			}
			lastBeat = cmd.Beat
		}
		cancel()
		ok := err == nil
		if mismatch {
			ok, err = false, fmt.Errorf("found cut while commanded on: %w", err)
		}
		l.mu.Lock()
		if closing {
			l.closedCut = ok && st.known && !st.energised
		}
		close(l.progress)
		l.progress = make(chan struct{})
		l.mu.Unlock()
		obs := safety.Observation{Output: l.name, Gen: cmd.Gen, Known: st.known, Energised: st.energised,
			Confirmed: ok && energise == !cmd.Cut, Mismatch: mismatch}
		if err != nil {
			obs.Err = err.Error()
		}
		l.opt.Report(obs)

		switch {
		case ok:
			if lastErr != "" {
				log.Info("output holds again", "energised", energise, "after", lastErr)
			}
			lastErr, retry = "", l.opt.RetryMin
			doneGen, haveDone = cmd.Gen, true
		case mismatch:
			lastErr = obs.Err
			doneGen, haveDone = cmd.Gen, true
		default:
			if obs.Err != lastErr {
				log.Warn("output write failed, retrying", "energised", energise, "err", err)
			}
			lastErr, haveDone = obs.Err, false
			l.wait(ctx, retry)
			retry = min(retry*2, l.opt.RetryMax)
			continue
		}
		if l.drv.drifts() || l.hb != nil {
			l.wait(ctx, l.opt.VerifyEvery)
		} else {
			l.wait(ctx, 0)
		}
	}
	return nil
}

// wait waits for a command, d (0: no timer) or the end of ctx.
func (l *Lane) wait(ctx context.Context, d time.Duration) {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
	case <-l.wake:
	case <-timer:
	}
}
