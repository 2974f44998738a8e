package gpio

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// DefaultInterval is how often an Input re-emits its current value when
// the sensor has no interval (config "interval", default 1s).
const DefaultInterval = time.Second

// maxWait bounds one wait for an edge, so that Run notices the end of its
// context even on pins whose Halt does not interrupt WaitForEdge.
const maxWait = 250 * time.Millisecond

// LevelReader is implemented by pins that can report a failed read.
// periph's gpio.PinIn.Read cannot (gpioioctl logs the ioctl error and
// returns Low); Host's lines (ChipLine) and test pins implement it, and
// Input reads through it when a pin has it: a read error is a fault
// reading, never a level.
type LevelReader interface {
	// ReadLevel returns the line's electrical level, or an error (the
	// level is then meaningless).
	ReadLevel() (pgpio.Level, error)
}

// closer is implemented by pins that hold a request to release when Run
// returns (ChipLine).
type closer interface {
	Close() error
}

// Input reads one digital sensor (config type digital with a gpio block)
// from a GPIO line: it debounces the line and emits a reading on every
// debounced change and every sensor interval.
type Input struct {
	sensor    config.Sensor
	where     string // "chip gpiochip0 line 17", for errors
	pin       pgpio.PinIn
	activeLow bool
	pull      pgpio.Pull
	debounce  time.Duration
	interval  time.Duration
	emit      func(reading.Reading)
	log       *slog.Logger

	lastLoop    atomic.Int64 // unix ns of the last loop iteration (LastRead)
	noEdgeNoted bool         // the "without edge detection" warning was logged
}

// NewInput finds the sensor's line through l and returns its reader. The
// sensor must have a gpio block. emit receives every reading on Run's
// goroutine and must not block for long. log may be nil. Errors name the
// sensor, the chip and the line; a missing line wraps ErrNotFound.
func NewInput(s config.Sensor, l Lookup, emit func(reading.Reading), log *slog.Logger) (*Input, error) {
	if s.GPIO == nil {
		return nil, fmt.Errorf("sensor %s: no gpio block", s.ID)
	}
	if emit == nil {
		return nil, fmt.Errorf("sensor %s: emit is nil", s.ID)
	}
	g := s.GPIO
	var pull pgpio.Pull
	switch g.Pull {
	case "", "none":
		pull = pgpio.Float
	case "up":
		pull = pgpio.PullUp
	case "down":
		pull = pgpio.PullDown
	default:
		return nil, fmt.Errorf("sensor %s: gpio pull %q (want up, down or none)", s.ID, g.Pull)
	}
	if g.Debounce < 0 || s.Interval < 0 {
		return nil, fmt.Errorf("sensor %s: negative debounce or interval", s.ID)
	}
	p, err := Open(l, g.Chip, g.Line)
	if err != nil {
		return nil, fmt.Errorf("sensor %s: %w", s.ID, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := &Input{
		sensor:    s,
		where:     fmt.Sprintf("chip %s line %d", g.Chip, g.Line),
		pin:       p,
		activeLow: g.ActiveLow,
		pull:      pull,
		debounce:  g.Debounce.D(),
		interval:  s.Interval.D(),
		emit:      emit,
		log:       log.With("sensor", s.ID, "chip", g.Chip, "line", g.Line),
	}
	if in.debounce == 0 {
		in.debounce = DefaultDebounce
	}
	if in.interval == 0 {
		in.interval = DefaultInterval
	}
	return in, nil
}

// samplePeriod is the polling period used when the line has no edge
// detection: a fifth of the debounce window, within [1 ms, 10 ms].
func (in *Input) samplePeriod() time.Duration {
	return min(max(in.debounce/5, time.Millisecond), 10*time.Millisecond)
}

// LastRead returns when Run last went round its loop: a configuration or
// read attempt of the line, successful or not (a failure is a fault
// reading). While Run is alive it is never older than the longer of the
// sensor interval and 250 ms (plus the time emit takes), so a supervisor
// can tell a stuck input from a faulty one. Zero before Run starts.
func (in *Input) LastRead() time.Time {
	if ns := in.lastLoop.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Run reads the line until ctx ends, then returns nil (releasing the
// line's input request, see ChipLine). It waits for edges when the line
// supports edge detection and samples every samplePeriod otherwise. A
// line that cannot be configured, read or waited on gives a fault reading
// every interval, and is configured afresh, until it reads again.
func (in *Input) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = in.pin.Halt() })
	defer func() {
		stop()
		if c, ok := in.pin.(closer); ok {
			_ = c.Close()
		}
	}()

	var (
		edges    bool
		ready    bool
		deb      = NewDebouncer(in.debounce)
		nextEmit time.Time
		lastErr  string
	)
	for ctx.Err() == nil {
		now := time.Now()
		in.lastLoop.Store(now.UnixNano())
		if !ready {
			var err error
			edges, err = in.configure()
			if err != nil {
				in.fault(now, err, &lastErr)
				sleep(ctx, in.interval)
				continue
			}
			ready, deb, nextEmit = true, NewDebouncer(in.debounce), time.Time{}
		}
		level, err := in.read()
		if err != nil {
			in.fault(now, err, &lastErr)
			ready = false // reconfigure, and debounce afresh once it reads again
			sleep(ctx, in.interval)
			continue
		}
		if lastErr != "" {
			in.log.Info("gpio input reads again", "after", lastErr)
			lastErr = ""
		}
		lvl, at, changed := deb.Update(bool(level), now)
		if changed {
			in.emitValue(lvl, at)
			nextEmit = now.Add(in.interval)
		} else if _, known := deb.Level(); known && !now.Before(nextEmit) {
			in.emitValue(lvl, now)
			nextEmit = now.Add(in.interval)
		}

		// Wait for the next edge, the end of the debounce window, the next
		// periodic reading, or (without edge detection) the next sample.
		wait := in.interval
		if !nextEmit.IsZero() {
			wait = nextEmit.Sub(now)
		}
		if dl, ok := deb.Deadline(); ok {
			wait = min(wait, dl.Sub(now))
		}
		if !edges {
			wait = min(wait, in.samplePeriod())
		}
		wait = min(max(wait, 100*time.Microsecond), maxWait) // 0 means "forever" to gpioioctl
		if !edges {
			sleep(ctx, wait)
			continue
		}
		waitStart := time.Now()
		edge, err := in.wait(wait)
		if err != nil && ctx.Err() == nil {
			in.fault(time.Now(), err, &lastErr)
			ready = false
			sleep(ctx, in.interval)
			continue
		}
		if !edge && ctx.Err() == nil {
			// A wait that fails at once without saying so (periph's
			// WaitForEdge logs and returns false on an fd error) must not
			// spin: sleep out the rest of it.
			if rest := wait - time.Since(waitStart); rest > wait/2 {
				sleep(ctx, rest)
			}
		}
		if edge && ctx.Err() == nil {
			// The line moved: restart the stability timer even if it reads
			// the same level as before (a bounce faster than this loop).
			if level, err := in.read(); err == nil {
				t := time.Now()
				if lvl, at, changed := deb.Edge(bool(level), t); changed {
					in.emitValue(lvl, at)
					nextEmit = t.Add(in.interval)
				}
			}
		}
	}
	return nil
}

// configure sets the line as an input with its pull and both edges, or
// without edge detection if the line cannot do it. edges reports which.
// The warning about sampling is logged once per Input, when the line
// works without edges (not on every retry of a line that does not work).
func (in *Input) configure() (edges bool, err error) {
	edgeErr := in.pin.In(in.pull, pgpio.BothEdges)
	if edgeErr == nil {
		return true, nil
	}
	if err := in.pin.In(in.pull, pgpio.NoEdge); err != nil {
		return false, fmt.Errorf("configure input: %w", err)
	}
	if !in.noEdgeNoted {
		in.noEdgeNoted = true
		in.log.Warn("gpio input without edge detection, sampling instead", "err", edgeErr, "every", in.samplePeriod())
	}
	return false, nil
}

// wait waits up to d for an edge; only an EdgeWaiter can report an error.
func (in *Input) wait(d time.Duration) (bool, error) {
	if w, ok := in.pin.(EdgeWaiter); ok {
		edge, err := w.WaitEdge(d)
		if err != nil {
			return false, fmt.Errorf("wait for edge: %w", err)
		}
		return edge, nil
	}
	return in.pin.WaitForEdge(d), nil
}

func (in *Input) read() (pgpio.Level, error) {
	if r, ok := in.pin.(LevelReader); ok {
		l, err := r.ReadLevel()
		if err != nil {
			return l, fmt.Errorf("read: %w", err)
		}
		return l, nil
	}
	return in.pin.Read(), nil
}

// emitValue emits the debounced electrical level as 1 (active) or 0.
func (in *Input) emitValue(level bool, at time.Time) {
	v := 0.0
	if level != in.activeLow {
		v = 1
	}
	in.emit(reading.Reading{
		Sensor: in.sensor.ID, Type: in.sensor.Type, Unit: in.sensor.Unit,
		Time: at, Value: v, Status: reading.StatusNormal,
	})
}

// fault emits a fault reading (code gpio) and logs a new error once.
func (in *Input) fault(at time.Time, err error, last *string) {
	msg := fmt.Sprintf("gpio %s: %v", in.where, err)
	if msg != *last {
		in.log.Warn("gpio input fault", "err", err)
		*last = msg
	}
	in.emit(reading.Reading{
		Sensor: in.sensor.ID, Type: in.sensor.Type, Unit: in.sensor.Unit,
		Time: at, Status: reading.StatusFault, Err: msg, Code: reading.CodeGPIO,
	})
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
