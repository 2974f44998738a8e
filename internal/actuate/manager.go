// Package actuate drives hazmon's safety outputs: relays on GPIO lines and
// breaker coils on Modbus slaves, wired fail-safe (energised = power
// allowed, de-energised = cut). A Manager owns every output: the safety
// loop hands it the rule engine's changes (Apply, which never blocks), and
// one goroutine per output makes the wanted state true and keeps it true,
// retrying with backoff. Every output starts cut and is cut again on Close.
//
// An output may name a feed sensor (a digital input, 1 = power present on
// the controlled circuit). When the feed contradicts the command for longer
// than the output's feed timeout (power still present after a cut-off, or
// no power while the output allows it) the Manager raises feed abnormal
// (馈电异常, domain notes §4) and clears it when they agree again.
package actuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/gpio"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

// DefaultFeedTimeout is how long the feed of an output may contradict its
// command before feed abnormal is raised (config feed_timeout). The
// regulation sets no figure; 2 s is hazmon's default: breakers and
// contactors open or close in well under 100 ms, and 2 s covers a feed
// contact polled at the default 1 s interval plus its debounce.
const DefaultFeedTimeout = 2 * time.Second

// Defaults of Options.
const (
	DefaultRetryMin       = 100 * time.Millisecond // first wait after a failed write or read-back
	DefaultRetryMax       = 5 * time.Second        // cap of the doubling wait between retries
	DefaultVerifyEvery    = time.Second            // coil read-back period once it holds
	DefaultOpTimeout      = 5 * time.Second        // bound of one write+read-back attempt, bus queue included
	DefaultFeedCheckEvery = 100 * time.Millisecond // feed timeout resolution without new feed readings
)

// FeedEvent states (the same strings as rule events).
const (
	FeedRaised  = safety.StateRaised
	FeedCleared = safety.StateCleared
)

// FeedEvent is a feed abnormal alarm of one output, raised or cleared. The
// app publishes it as an alarm with level "feed_abnormal".
type FeedEvent struct {
	Output string    // output name
	Feed   string    // feed sensor id
	State  string    // FeedRaised or FeedCleared
	Time   time.Time // Manager clock time of the change
	Cut    bool      // the output's command at that time
	Reason string    // e.g. "power still present on feed FEED-1 2s after cut-off"
}

// Options are a Manager's hardware access, callbacks and timings. Zero
// durations take the defaults above.
type Options struct {
	// Pins finds the GPIO lines of GPIO outputs (gpio.Host() on a board,
	// a gpio.PinMap of gpiotest pins in tests). Needed only if an output
	// has a gpio block.
	Pins gpio.Lookup
	// Buses gives the poller of each Modbus bus by config bus name
	// (*modbus.Poller). The pollers must keep running until Close returns.
	Buses map[string]CoilBus
	// OnFeed receives feed abnormal raise/clear events, serialised, from
	// Feed's caller or the Manager's feed-check goroutine. It must not
	// call Feed, FeedReading or Close; State is fine.
	OnFeed func(FeedEvent)
	// Now is the clock of feed timeouts, ChangedAt and event times
	// (default time.Now).
	Now func() time.Time
	// Log receives write failures and recoveries (default: discarded).
	Log *slog.Logger

	// Restored names outputs handed over by a previous Manager (a config
	// reload, see Release) whose wanted state was power allowed: they start
	// energised instead of cut, so the reload does not switch them off.
	// Every other output starts cut.
	Restored map[string]bool

	RetryMin       time.Duration
	RetryMax       time.Duration
	VerifyEvery    time.Duration
	OpTimeout      time.Duration
	FeedCheckEvery time.Duration
}

// OutputState is a snapshot of one output.
type OutputState struct {
	Name string
	// Cut is the wanted state: true = cut (de-energised), false = power
	// allowed (energised).
	Cut bool
	// Energised is the last state written (GPIO) or read back (coil);
	// false before the first successful write.
	Energised bool
	// Settled: the wanted state has been written and, for a coil, read
	// back, and nothing has changed since.
	Settled bool
	// LastError is the error of the last attempt, "" once it holds.
	LastError    string
	Feed         string // feed sensor id, "" if none
	FeedValid    bool   // the last feed reading was valid
	FeedPresent  bool   // the last valid feed reading showed power
	FeedAbnormal bool
	FeedReason   string    // why feed abnormal is raised, "" otherwise
	ChangedAt    time.Time // when Cut last changed (or the Manager started)
}

// output is one output and its state; fields after wake are guarded by
// Manager.mu.
type output struct {
	name        string
	desc        string // "gpio chip gpiochip0 line 17" or "bus b1 slave 3 coil 10"
	drv         driver
	feed        string
	feedTimeout time.Duration
	wake        chan struct{} // cap 1: the wanted state changed

	cut           bool
	gen           uint64 // incremented on every change of cut
	settled       bool
	energised     bool
	lastErr       string
	changedAt     time.Time
	attemptCancel context.CancelFunc // cancels the attempt in flight (a stale write still queued is dropped)

	feedSeen          bool
	feedValid         bool
	feedPresent       bool
	feedAt            time.Time
	inconsistentSince time.Time // zero while the feed agrees with the command
	abnormal          bool
	abnormalReason    string
}

// Manager owns the safety outputs. Its methods are safe for concurrent
// use.
type Manager struct {
	opt    Options
	log    *slog.Logger
	outs   []*output
	byName map[string]*output
	byFeed map[string][]*output

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	progress chan struct{} // cap 1: an attempt finished (Close waits on it)
	once     sync.Once

	evalMu sync.Mutex // serialises feed evaluation and OnFeed calls
	mu     sync.Mutex
	closed bool
}

// NewManager opens every output of outs, drives each to cut and starts
// their goroutines. GPIO outputs are written cut before NewManager returns;
// coil outputs are written by their goroutine, retrying until the bus
// answers. Errors name the output: duplicate or empty names, an output
// with both or neither of gpio and modbus, a missing GPIO line (wrapping
// gpio.ErrNotFound), an unknown bus, an out-of-range slave or coil, a
// failed first GPIO write.
func NewManager(outs []config.Output, opt Options) (*Manager, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	setDefault(&opt.RetryMin, DefaultRetryMin)
	setDefault(&opt.RetryMax, DefaultRetryMax)
	setDefault(&opt.VerifyEvery, DefaultVerifyEvery)
	setDefault(&opt.OpTimeout, DefaultOpTimeout)
	setDefault(&opt.FeedCheckEvery, DefaultFeedCheckEvery)

	m := &Manager{
		opt:      opt,
		log:      opt.Log,
		byName:   make(map[string]*output, len(outs)),
		byFeed:   make(map[string][]*output),
		progress: make(chan struct{}, 1),
	}
	now := opt.Now()
	var errs []error
	for _, c := range outs {
		o, err := m.newOutput(c, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.outs = append(m.outs, o)
		m.byName[o.name] = o
		if o.feed != "" {
			m.byFeed[o.feed] = append(m.byFeed[o.feed], o)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Cut GPIO outputs at once, before anything else runs (a handed-over
	// restored output is written energised, as it already is).
	for _, o := range m.outs {
		if g, ok := o.drv.(*gpioDriver); ok {
			st, err := g.set(context.Background(), !o.cut)
			if err != nil {
				return nil, fmt.Errorf("output %s: %s: write at start: %w", o.name, o.desc, err)
			}
			o.energised, o.settled = st.energised, true
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for _, o := range m.outs {
		m.wg.Add(1)
		go m.run(ctx, o)
	}
	if len(m.byFeed) > 0 {
		m.wg.Add(1)
		go m.feedLoop(ctx)
	}
	return m, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func (m *Manager) newOutput(c config.Output, now time.Time) (*output, error) {
	if c.Name == "" {
		return nil, errors.New("output without a name")
	}
	if _, dup := m.byName[c.Name]; dup {
		return nil, fmt.Errorf("output %s: defined twice", c.Name)
	}
	o := &output{
		name: c.Name, feed: c.Feed, feedTimeout: c.FeedTimeout.D(),
		wake: make(chan struct{}, 1), cut: !m.opt.Restored[c.Name], changedAt: now,
	}
	if o.feedTimeout < 0 {
		return nil, fmt.Errorf("output %s: negative feed_timeout %s", c.Name, o.feedTimeout)
	}
	if o.feedTimeout == 0 {
		o.feedTimeout = DefaultFeedTimeout
	}
	switch {
	case c.GPIO != nil && c.Modbus != nil:
		return nil, fmt.Errorf("output %s: both gpio and modbus (want one)", c.Name)
	case c.GPIO != nil:
		pin, err := gpio.Open(m.opt.Pins, c.GPIO.Chip, c.GPIO.Line)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", c.Name, err)
		}
		o.desc = fmt.Sprintf("gpio chip %s line %d", c.GPIO.Chip, c.GPIO.Line)
		o.drv = &gpioDriver{pin: pin, activeLow: c.GPIO.ActiveLow}
	case c.Modbus != nil:
		mc := c.Modbus
		bus := m.opt.Buses[mc.Bus]
		if bus == nil {
			return nil, fmt.Errorf("output %s: bus %q has no poller", c.Name, mc.Bus)
		}
		if mc.Slave < 0 || mc.Slave > 255 {
			return nil, fmt.Errorf("output %s: slave %d out of range 0..255", c.Name, mc.Slave)
		}
		if mc.Coil < 0 || mc.Coil > 0xFFFF {
			return nil, fmt.Errorf("output %s: coil %d out of range 0..65535", c.Name, mc.Coil)
		}
		o.desc = fmt.Sprintf("bus %s slave %d coil %d", mc.Bus, mc.Slave, mc.Coil)
		o.drv = &coilDriver{bus: bus, slave: byte(mc.Slave), coil: uint16(mc.Coil)}
	default:
		return nil, fmt.Errorf("output %s: neither gpio nor modbus", c.Name)
	}
	return o, nil
}

// Apply records the rule engine's output changes (safety.Effects.Changes)
// and returns at once; each output's goroutine then writes it. A change of
// an unknown output is logged and ignored. After Close, restores are
// ignored: outputs stay cut.
func (m *Manager) Apply(changes []safety.Change) {
	if len(changes) == 0 {
		return
	}
	now := m.opt.Now()
	var unknown []string
	m.mu.Lock()
	for _, c := range changes {
		o := m.byName[c.Output]
		if o == nil {
			unknown = append(unknown, c.Output)
			continue
		}
		if m.closed || o.cut == c.Cut { // closing or released: shutdown owns the outputs
			continue
		}
		m.setLocked(o, c.Cut, now)
	}
	m.mu.Unlock()
	for _, name := range unknown {
		m.log.Warn("change of an unknown output ignored", "output", name)
	}
}

// setLocked changes o's wanted state and wakes its goroutine. m.mu held.
func (m *Manager) setLocked(o *output, cut bool, now time.Time) {
	o.cut = cut
	o.gen++
	o.settled = false
	o.changedAt = now
	// The last feed reading may contradict the new command from now on.
	o.inconsistentSince = time.Time{}
	if o.feedSeen && o.feedValid && o.feedPresent == cut {
		o.inconsistentSince = now
	}
	if o.attemptCancel != nil {
		o.attemptCancel()
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// run makes o's wanted state true and keeps it true until ctx ends.
func (m *Manager) run(ctx context.Context, o *output) {
	defer m.wg.Done()
	log := m.log.With("output", o.name, "at", o.desc)
	retry := m.opt.RetryMin
	for ctx.Err() == nil {
		m.mu.Lock()
		energise, gen, settled := !o.cut, o.gen, o.settled
		actx, cancel := context.WithTimeout(ctx, m.opt.OpTimeout)
		o.attemptCancel = cancel
		m.mu.Unlock()

		var st state
		var err error
		if settled {
			st, err = o.drv.check(actx, energise)
			if errors.Is(err, errMismatch) {
				log.Warn("output changed behind hazmon's back, re-writing", "err", err)
				st, err = o.drv.set(actx, energise)
			}
		} else {
			st, err = o.drv.set(actx, energise)
		}
		cancel()

		m.mu.Lock()
		o.attemptCancel = nil
		if st.known {
			o.energised = st.energised
		}
		current := gen == o.gen
		if current {
			prev := o.lastErr
			if err == nil {
				o.settled, o.lastErr = true, ""
				if prev != "" {
					log.Info("output holds again", "energised", energise, "after", prev)
				}
			} else {
				o.settled, o.lastErr = false, err.Error()
				if o.lastErr != prev {
					log.Warn("output write failed, retrying", "energised", energise, "err", err)
				}
			}
		}
		m.mu.Unlock()
		select {
		case m.progress <- struct{}{}:
		default:
		}

		switch {
		case ctx.Err() != nil:
			return
		case !current: // the wanted state changed meanwhile: at once
			retry = m.opt.RetryMin
			continue
		case err != nil:
			wait(ctx, o.wake, retry)
			retry = min(retry*2, m.opt.RetryMax)
			continue
		}
		retry = m.opt.RetryMin
		if o.drv.drifts() {
			wait(ctx, o.wake, m.opt.VerifyEvery)
		} else {
			select {
			case <-ctx.Done():
			case <-o.wake:
			}
		}
	}
}

// wait waits d, a wake-up or the end of ctx.
func wait(ctx context.Context, wake <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
}

// FeedSensors returns the ids of the sensors that are some output's feed.
func (m *Manager) FeedSensors() []string {
	ids := make([]string, 0, len(m.byFeed))
	for _, o := range m.outs {
		if o.feed != "" && m.byFeed[o.feed][0] == o {
			ids = append(ids, o.feed)
		}
	}
	return ids
}

// FeedReading passes r to Feed if r's sensor is a feed (value != 0 = power
// present); other readings are ignored at the cost of a map lookup.
func (m *Manager) FeedReading(r reading.Reading) {
	if _, ok := m.byFeed[r.Sensor]; ok {
		m.Feed(r.Sensor, r.Value != 0, r.Valid(), r.Time)
	}
}

// Feed records a reading of feed sensor sensorID taken at t (present: the
// circuit has power; valid: false for a fault reading) and evaluates the
// outputs it feeds. While the feed is invalid the check is suspended and
// feed abnormal keeps its state.
func (m *Manager) Feed(sensorID string, present, valid bool, t time.Time) {
	outs := m.byFeed[sensorID]
	if len(outs) == 0 {
		return
	}
	m.mu.Lock()
	for _, o := range outs {
		o.feedSeen, o.feedValid, o.feedAt = true, valid, t
		if valid {
			o.feedPresent = present
		}
	}
	m.mu.Unlock()
	m.checkFeeds()
}

// feedLoop re-evaluates feeds every FeedCheckEvery, so a timeout expires
// even when no new feed reading arrives.
func (m *Manager) feedLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.opt.FeedCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.checkFeeds()
		}
	}
}

// checkFeeds evaluates every output with a feed at the Manager's clock and
// calls OnFeed with the changes, in order.
func (m *Manager) checkFeeds() {
	m.evalMu.Lock()
	defer m.evalMu.Unlock()
	now := m.opt.Now()
	var evs []FeedEvent
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	for _, o := range m.outs {
		if o.feed == "" {
			continue
		}
		if ev, ok := evalFeed(o, now); ok {
			evs = append(evs, ev)
		}
	}
	m.mu.Unlock()
	for _, ev := range evs {
		if ev.State == FeedRaised {
			m.log.Warn("feed abnormal", "output", ev.Output, "feed", ev.Feed, "reason", ev.Reason)
		} else {
			m.log.Info("feed abnormal cleared", "output", ev.Output, "feed", ev.Feed)
		}
		if m.opt.OnFeed != nil {
			m.opt.OnFeed(ev)
		}
	}
}

// evalFeed updates o's feed abnormal state at now. The feed contradicts
// the command when it shows power while the output is cut, or no power
// while it is allowed; feed abnormal is raised once the contradiction has
// lasted feed_timeout, counted from the later of its start and the last
// command change, and cleared as soon as the feed agrees. Manager.mu held.
func evalFeed(o *output, now time.Time) (FeedEvent, bool) {
	if !o.feedSeen || !o.feedValid {
		o.inconsistentSince = time.Time{}
		return FeedEvent{}, false
	}
	ev := FeedEvent{Output: o.name, Feed: o.feed, Time: now, Cut: o.cut}
	if o.feedPresent == !o.cut {
		o.inconsistentSince = time.Time{}
		if !o.abnormal {
			return FeedEvent{}, false
		}
		o.abnormal, o.abnormalReason = false, ""
		ev.State = FeedCleared
		ev.Reason = fmt.Sprintf("feed %s agrees with the output again", o.feed)
		return ev, true
	}
	if o.inconsistentSince.IsZero() {
		o.inconsistentSince = now
	}
	from := o.inconsistentSince
	if o.changedAt.After(from) {
		from = o.changedAt
	}
	if o.abnormal || now.Sub(from) < o.feedTimeout {
		return FeedEvent{}, false
	}
	if o.cut {
		ev.Reason = fmt.Sprintf("power still present on feed %s %s after cut-off", o.feed, o.feedTimeout)
	} else {
		ev.Reason = fmt.Sprintf("no power on feed %s while the output allows it, for %s", o.feed, o.feedTimeout)
	}
	o.abnormal, o.abnormalReason = true, ev.Reason
	ev.State = FeedRaised
	return ev, true
}

// State returns a snapshot of every output, in config order.
func (m *Manager) State() []OutputState {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := make([]OutputState, len(m.outs))
	for i, o := range m.outs {
		s[i] = OutputState{
			Name: o.name, Cut: o.cut, Energised: o.energised, Settled: o.settled,
			LastError: o.lastErr, Feed: o.feed, FeedValid: o.feedSeen && o.feedValid,
			FeedPresent: o.feedPresent, FeedAbnormal: o.abnormal, FeedReason: o.abnormalReason,
			ChangedAt: o.changedAt,
		}
	}
	return s
}

// Release hands the outputs over to a new Manager (a config reload, see
// Options.Restored): outputs for which keep reports true are left exactly
// as they are; every other output (removed, or moved to another line or
// coil by the new config) is cut and confirmed first, as by Close, so no
// output is left energised without an owner. Then the goroutines stop.
// Apply and Feed are ignored from the start of the call; Close then does
// nothing. The bus pollers must still run. The error names each output
// not confirmed cut.
func (m *Manager) Release(ctx context.Context, keep func(name string) bool) error {
	var err error
	m.once.Do(func() { err = m.shutdown(ctx, keep) })
	return err
}

// Close cuts every output, waits until each is confirmed cut (GPIO
// written, coil read back 0) or ctx ends, then stops the Manager's
// goroutines. The bus pollers must still be running. It returns an error
// naming each output not confirmed cut. Later calls return nil; Apply and
// Feed are then ignored.
func (m *Manager) Close(ctx context.Context) error {
	var err error
	m.once.Do(func() { err = m.shutdown(ctx, nil) })
	return err
}

// shutdown cuts every output keep does not keep (nil: every output), waits
// until those are confirmed cut or ctx ends, then stops the goroutines.
func (m *Manager) shutdown(ctx context.Context, keep func(string) bool) error {
	now := m.opt.Now()
	cutting := func(o *output) bool { return keep == nil || !keep(o.name) }
	m.mu.Lock()
	m.closed = true
	for _, o := range m.outs {
		if cutting(o) && !o.cut {
			m.setLocked(o, true, now)
		}
	}
	m.mu.Unlock()

	var pending []string
	for {
		pending = pending[:0]
		m.mu.Lock()
		for _, o := range m.outs {
			if cutting(o) && (!o.settled || o.energised) {
				msg := o.name + " (" + o.desc
				if o.lastErr != "" {
					msg += ": " + o.lastErr
				}
				pending = append(pending, msg+")")
			}
		}
		m.mu.Unlock()
		if len(pending) == 0 || ctx.Err() != nil {
			break
		}
		select {
		case <-m.progress:
		case <-ctx.Done():
		}
	}
	m.cancel()
	m.wg.Wait()
	if len(pending) > 0 {
		return fmt.Errorf("actuate: outputs not confirmed cut: %s: %w", strings.Join(pending, ", "), ctx.Err())
	}
	return nil
}
