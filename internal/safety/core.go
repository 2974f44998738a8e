package safety

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hazmon/hazmon/internal/reading"
)

// ErrStopped is returned by the Core's requests once Run has returned.
var ErrStopped = errors.New("safety core stopped")

// takeBatch bounds the readings taken from one source per turn, so one
// busy source cannot delay another's cut-off.
const takeBatch = 256

// Options are a Core's clock, queue sizes and start-up state. Zero values
// take the defaults.
type Options struct {
	Clock          Clock // default RealClock
	SourceQueue    int   // default DefaultSourceQueue
	OutboxReadings int   // default DefaultOutboxReadings
	OutboxUrgent   int   // default DefaultOutboxUrgent

	// HoldUntil keeps every output cut until this time, whatever the rules
	// say: after an unclean stop the app sets it, so that an agent that
	// crashes in a loop cannot cycle a breaker. HoldReason says why (status).
	HoldUntil  time.Time
	HoldReason string

	// PreviousAlarms are the alarms that were active when the agent last
	// stopped. Each one that is raised again keeps its id; each one that is
	// not is cleared with reason ReasonRestart once its sensor has read
	// validly, or RestartSettle after start at the latest.
	PreviousAlarms []Alarm
	RestartSettle  time.Duration // default DefaultRestartSettle

	// Latched are the outputs latched cut by LevelOutputMismatch when the
	// agent last stopped (output → reason): they stay latched.
	Latched map[string]string
}

// Core is the safety function's one goroutine (Run). Create it with New,
// give each source its Source (NewSource), run it, drain its Outbox.
// Its exported methods are safe for concurrent use.
type Core struct {
	clock Clock
	opts  Options
	wake  chan struct{}
	reqs  chan request
	out   *Outbox
	done  chan struct{} // closed when Run returns

	srcMu   sync.Mutex
	sources []*Source

	obsMu sync.Mutex
	obs   map[string]Observation // latest observation per output, not yet applied

	loop    atomic.Int64            // unix ns of the last loop iteration (liveness)
	active  atomic.Pointer[[]Alarm] // active alarms, replaced on every change
	started atomic.Bool

	// Owned by the Run goroutine (and by New before it starts).
	st state
}

// state is everything the Run goroutine owns.
type state struct {
	spec     Spec
	engine   *Engine
	outs     []*outState
	byName   map[string]*outState
	byFeed   map[string][]*outState
	groups   []group
	memberOf map[string][]int
	alarms   alarmBook
	calUntil map[string]time.Time // sensors under calibration, for the stop event
	start    time.Time
	lastTick time.Time
	settled  bool // restart reconciliation finished
	batch    []reading.Reading
	due      map[string]*calibrationDue // calibration due dates (calibration.go)
	calNext  dueBound                   // the next of them to act on (due.go)
	fast     bool                       // tick every TickEvery, not IdleTickEvery (due.go)
	tickBase time.Time                  // the tickers' origin: ticks fall on its grid (due.go)
	nextTick time.Time                  // the next step at or after it ticks
	// Open abnormal episodes (episode.go), by alarm key and by sensor.
	episodes   map[string]*episode
	episodesOf map[string][]*episode
}

// New builds a Core for spec. lanes gives each output of spec its lane;
// an output without a lane is an error, and so are invalid rules (every
// problem, errors.Join). Every output starts cut.
func New(spec Spec, lanes map[string]Lane, opts Options) (*Core, error) {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.SourceQueue <= 0 {
		opts.SourceQueue = DefaultSourceQueue
	}
	if opts.OutboxReadings <= 0 {
		opts.OutboxReadings = DefaultOutboxReadings
	}
	if opts.OutboxUrgent <= 0 {
		opts.OutboxUrgent = DefaultOutboxUrgent
	}
	if opts.RestartSettle <= 0 {
		opts.RestartSettle = DefaultRestartSettle
	}
	engine, err := NewEngine(spec.Sensors)
	if err != nil {
		return nil, fmt.Errorf("safety: %w", err)
	}
	c := &Core{
		clock: opts.Clock, opts: opts,
		wake: make(chan struct{}, 1), reqs: make(chan request),
		out:  newOutbox(opts.OutboxReadings, opts.OutboxUrgent),
		done: make(chan struct{}),
		obs:  map[string]Observation{},
	}
	now := c.clock.Now()
	c.st = state{engine: engine, alarms: newAlarmBook(opts.PreviousAlarms), calUntil: map[string]time.Time{}, start: now, lastTick: now,
		tickBase: now, nextTick: now.Add(TickEvery)}
	if err := checkOutputs(spec, lanes); err != nil {
		return nil, err
	}
	c.install(spec, lanes, nil, now)
	for name, reason := range opts.Latched {
		if o := c.st.byName[name]; o != nil {
			c.latch(o, reason, now)
		}
	}
	c.loop.Store(now.UnixNano())
	c.command(now)
	c.publishAlarms()
	return c, nil
}

// Outbox returns the queue of evaluated readings, alarms and events.
func (c *Core) Outbox() *Outbox { return c.out }

// NewSource registers a producer of readings and returns its queue.
func (c *Core) NewSource(name string) *Source {
	s := &Source{name: name, core: c, q: newRing[reading.Reading](c.opts.SourceQueue)}
	c.srcMu.Lock()
	c.sources = append(c.sources, s)
	c.srcMu.Unlock()
	return s
}

// Sources returns the registered sources (for status).
func (c *Core) Sources() []*Source {
	c.srcMu.Lock()
	defer c.srcMu.Unlock()
	return slices.Clone(c.sources)
}

// Observe hands a lane's observation to the Core without waiting; only the
// latest one per output is kept (a mismatch is never lost to a later one
// of the same generation).
func (c *Core) Observe(o Observation) {
	c.obsMu.Lock()
	if p, ok := c.obs[o.Output]; ok && p.Gen == o.Gen && p.Mismatch {
		o.Mismatch = true
	}
	c.obs[o.Output] = o
	c.obsMu.Unlock()
	c.wakeUp()
}

// LastLoop returns when the Core's loop last ran: a watchdog feeds systemd
// only while it is recent.
func (c *Core) LastLoop() time.Time { return time.Unix(0, c.loop.Load()) }

// ActiveAlarms returns the alarms currently raised (do not modify).
func (c *Core) ActiveAlarms() []Alarm {
	if p := c.active.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *Core) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run evaluates readings and advances timers until ctx ends, then returns
// nil. It must be called once.
func (c *Core) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("safety: Run called twice")
	}
	defer close(c.done)
	c.st.tickBase = c.clock.Now() // no later than the tickers' start
	c.st.nextTick = c.st.tickBase
	fast := c.clock.NewTicker(TickEvery)
	defer fast.Stop()
	idle := c.clock.NewTicker(IdleTickEvery)
	defer idle.Stop()
	for {
		c.step()
		// A ticker nobody waits on does not wake the process (Go ≥ 1.23
		// timers), so an idle agent wakes twice a second, not ten times.
		var fastC <-chan time.Time
		if c.st.fast {
			fastC = fast.C()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		case <-fastC:
		case <-idle.C():
		case r := <-c.reqs:
			c.serve(r)
		}
	}
}

// step does everything that is due: lanes' observations, queued readings,
// timers, output commands. Timers advance at the first step at or after
// each tick of the schedule (nextTick), whatever woke the loop, so a
// reading or a request between two ticks neither adds a tick nor moves
// the next one; the tickers only make sure the loop is awake for it.
func (c *Core) step() {
	now := c.clock.Now()
	c.loop.Store(now.UnixNano())
	c.applyObservations(now)
	more := c.evaluateSources(now)
	if !now.Before(c.st.nextTick) || now.Before(c.st.lastTick) {
		c.tick(now)
	}
	c.command(now)
	c.publishAlarms()
	c.st.fast = c.fastTicks(now)
	c.st.nextTick = c.nextTick(now)
	if more {
		c.wakeUp()
	}
}

// evaluateSources takes a bounded batch from each source in turn and
// evaluates it. It reports whether readings are still waiting.
func (c *Core) evaluateSources(now time.Time) (more bool) {
	c.srcMu.Lock()
	srcs := c.sources
	c.srcMu.Unlock()
	var closed bool
	for _, s := range srcs {
		var done bool
		c.st.batch, done = s.take(c.st.batch[:0], takeBatch)
		for _, r := range c.st.batch {
			c.evaluate(r, now)
		}
		closed = closed || done
		more = more || s.pending()
	}
	clear(c.st.batch)
	if closed {
		c.srcMu.Lock()
		c.sources = slices.DeleteFunc(c.sources, (*Source).finished)
		c.srcMu.Unlock()
	}
	return more
}

// evaluate runs the rules on one reading, hands on its effects and the
// evaluated reading.
func (c *Core) evaluate(r reading.Reading, now time.Time) {
	status, fx := c.st.engine.Apply(r, now)
	c.effects(fx, now)
	if len(fx.Changes) > 0 {
		c.command(now) // a cut goes to its lane before anything else
	}
	c.feedReading(r, now)
	c.legacyReading(r, now)
	for _, gi := range c.st.memberOf[r.Sensor] {
		c.aggregate(gi, now)
	}
	if r.Valid() {
		c.episodeReading(r.Sensor, r.Value, r.Time)
		c.settleRestart(r.Sensor, now)
	}
	r.Status = status
	c.out.put(Item{Kind: ItemReading, Reading: r})
}

// tick advances timers: on-delays, fault unlock, stale sensors, groups,
// feed timeouts, unconfirmed cuts, heartbeats, calibration end, start-up.
func (c *Core) tick(now time.Time) {
	c.st.lastTick = now
	c.effects(c.st.engine.Tick(now), now)
	for gi := range c.st.groups {
		c.aggregate(gi, now)
	}
	for _, o := range c.st.outs {
		c.checkFeed(o, now)
		c.checkConfirmed(o, now)
		c.heartbeat(o, now)
		if !o.testUntil.IsZero() && !now.Before(o.testUntil) {
			o.testUntil = time.Time{}
			c.event(Event{Type: EventOutputTestEnd, Time: now, Output: o.spec.Name, Detail: "test period ended"})
		}
	}
	for id, until := range c.st.calUntil {
		if !now.Before(until) {
			delete(c.st.calUntil, id)
			c.event(Event{Type: EventCalibrationStop, Time: now, Sensor: id, Detail: "calibration period ended"})
		}
	}
	c.checkCalibration(now)
	if !c.st.settled && now.Sub(c.st.start) >= c.opts.RestartSettle {
		c.settleRestartAll(now)
	}
}

// effects turns the engine's events into alarms (output changes are picked
// up by command).
func (c *Core) effects(fx Effects, now time.Time) {
	for _, ev := range fx.Events {
		a := Alarm{
			Sensor: ev.Sensor, Level: string(ev.Level), Direction: ev.Direction, State: ev.State,
			Time: ev.Time, Value: ev.Value, Valid: ev.Valid, Outputs: slices.Clone(ev.Outputs),
			Calibration: ev.Calibration, Reason: ev.Reason, Code: ev.Code,
		}
		if ev.Level != LevelFault {
			a.Limit, a.HasLimit = ev.Limit, true
		}
		c.emit(a)
	}
}

// emit gives an alarm its identity and hands it on.
func (c *Core) emit(a Alarm) {
	if a.Outputs == nil {
		a.Outputs = []string{}
	}
	var ok bool
	if a.State == StateRaised {
		var prevStart time.Time
		if p, cont := c.st.alarms.prev[a.Key()]; cont {
			prevStart = p.Time
		}
		if a, ok = c.st.alarms.raise(a); ok {
			c.openEpisode(a, prevStart)
		}
	} else if a, ok = c.st.alarms.clear(a); ok {
		a.Episode = c.closeEpisode(a)
	}
	if ok {
		// The snapshot first: whoever takes the item reads ActiveAlarms
		// and must find the alarm in it (raised) or gone (cleared).
		c.publishAlarms()
		c.out.put(Item{Kind: ItemAlarm, Alarm: a})
	}
}

func (c *Core) event(e Event) { c.out.put(Item{Kind: ItemEvent, Event: e}) }

// publishAlarms replaces the active-alarm snapshot if it changed.
func (c *Core) publishAlarms() {
	if !c.st.alarms.changed && c.active.Load() != nil {
		return
	}
	c.st.alarms.changed = false
	l := c.st.alarms.list()
	sort.Slice(l, func(i, j int) bool { return l[i].ID < l[j].ID })
	c.active.Store(&l)
}

// settleRestart clears, with reason ReasonRestart, the alarms of sensor
// that were active at the last stop and were not raised again by its first
// valid reading.
func (c *Core) settleRestart(sensor string, now time.Time) {
	if c.st.settled || len(c.st.alarms.prev) == 0 {
		return
	}
	for k, p := range c.st.alarms.prev {
		if p.Sensor != sensor {
			continue
		}
		if _, held := c.st.byName[p.Sensor]; held {
			continue // an output's own alarm: settled by its latch or at the deadline
		}
		if _, group := c.groupIndex(p.Sensor); group {
			continue
		}
		c.clearPrev(k, p, now)
	}
}

// settleRestartAll clears every alarm of the last run not raised again.
func (c *Core) settleRestartAll(now time.Time) {
	c.st.settled = true
	for k, p := range c.st.alarms.prev {
		c.clearPrev(k, p, now)
	}
}

func (c *Core) clearPrev(k string, p Alarm, now time.Time) {
	delete(c.st.alarms.prev, k)
	cl := p
	cl.State, cl.Time, cl.Reason, cl.Valid, cl.HasLimit = StateCleared, now, ReasonRestart, false, false
	c.out.put(Item{Kind: ItemAlarm, Alarm: cl})
}
