package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/decode"
	"github.com/hazmon/hazmon/internal/reading"
)

// Retry and backoff policy of a bus.
const (
	// BusyRetries is how often a request answered with exception 6 (slave
	// device busy) is retried before the poll is reported as a fault; the
	// waits are BusyWait, 2×BusyWait, ... (cases F2: a busy slave is alive).
	BusyRetries = 2
	BusyWait    = 50 * time.Millisecond

	// ReconnectMin and ReconnectMax bound the capped exponential backoff
	// (with ±20 % jitter) between attempts to open a bus that is down.
	ReconnectMin = 100 * time.Millisecond
	ReconnectMax = 10 * time.Second

	// SlaveBackoffMin and SlaveBackoffMax bound how long a slave that timed
	// out is left alone (doubling per timeout in a row), so that a dead
	// slave costs the others on its bus at most one timeout per backoff
	// (cases F4). The max keeps a recovered sensor visible within a third
	// of the 30 s polling cycle of GB 50581-2010 §3.1.4.
	SlaveBackoffMin = time.Second
	SlaveBackoffMax = 10 * time.Second

	// DefaultInterval is the poll interval of a sensor without one.
	DefaultInterval = time.Second
)

// Poller polls the sensors of one bus. One goroutine (Run) owns the bus:
// a serial bus carries one transaction at a time, and the one-shot Read and
// WriteCoil are queued onto the same goroutine.
//
// Sensors of the same slave, table and interval whose addresses are close
// (config.Bus.MaxGap) are read in one request and decoded from it; an
// exception to such a merged read makes its sensors be read one by one for
// SplitHold, so one bad register does not fault its neighbours. Each
// request is polled on a fixed grid (start + k×interval, monotonic clock);
// a tick that cannot be served in time is skipped and counted, never
// bunched. When the reads ask for more bus time than LoadTarget, the bus
// is over-subscribed: the reads holding gas sensors (IsGas) keep their
// interval and the others are stretched to a whole multiple of theirs
// (said in BusStats and a rate-limited warning). Every poll emits one
// reading per sensor: the value, or a fault with the reason (never an
// invented value).
type Poller struct {
	bus     config.Bus
	points  []*point
	groups  []*group
	emit    func(reading.Reading)
	log     *slog.Logger
	jobs    chan *job
	done    chan struct{}
	started atomic.Bool

	nextPlan time.Time // when the schedule is re-planned next (bus goroutine)
	lastWarn time.Time // last over-subscription warning (bus goroutine)

	mu    sync.Mutex
	stats BusStats
	meter meter
}

// Scheduler settings.
const (
	// LoadTarget is the share of the bus time the polls may fill before
	// the bus counts as over-subscribed; the rest is headroom for retries
	// and queued writes (breaker outputs).
	LoadTarget = 0.9
	// ReplanEvery is how often the schedule's load is re-estimated.
	ReplanEvery = time.Second
	// OverloadWarnEvery rate-limits the over-subscription warning.
	OverloadWarnEvery = time.Minute
	// MaxStretch bounds how far a non-gas read is slowed down.
	MaxStretch = 1000
	// MaxStretchedPeriod bounds a stretched read's period: the polling
	// cycle of the whole monitoring system must stay within 30 s
	// (GB 50581-2010 §3.1.4), so no sensor is read less often than that.
	MaxStretchedPeriod = 30 * time.Second
)

// slaveState is the backoff of a slave that stopped answering.
type slaveState struct {
	fails int
	until time.Time
}

// job is a one-shot request queued onto the bus goroutine.
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

// NewPoller checks the bus and its sensors and returns a poller for them.
// emit receives every reading on the bus goroutine and must not block for
// long (hand off to a channel or a fast store). Sensors of other buses are
// an error. log may be nil.
func NewPoller(bus config.Bus, sensors []config.Sensor, emit func(reading.Reading), log *slog.Logger) (*Poller, error) {
	if emit == nil {
		return nil, fmt.Errorf("bus %s: emit is nil", bus.Name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch bus.Protocol {
	case "tcp":
		if bus.Address == "" {
			return nil, fmt.Errorf("bus %s: tcp bus without address", bus.Name)
		}
	case "rtu":
		if bus.Device == "" {
			return nil, fmt.Errorf("bus %s: rtu bus without device", bus.Name)
		}
	default:
		return nil, fmt.Errorf("bus %s: protocol %q (want tcp or rtu)", bus.Name, bus.Protocol)
	}
	p := &Poller{
		bus:  bus,
		emit: emit,
		log:  log.With("bus", bus.Name),
		jobs: make(chan *job, 16),
		done: make(chan struct{}),
	}
	var errs []error
	for _, s := range sensors {
		pt, err := newPoint(bus, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("bus %s: sensor %s: %w", bus.Name, s.ID, err))
			continue
		}
		p.points = append(p.points, pt)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	maxGap := DefaultMaxGap
	if bus.MaxGap != nil {
		maxGap = *bus.MaxGap
	}
	p.groups = buildGroups(p.points, maxGap)
	p.stats.Sensors, p.stats.Reads = len(p.points), len(p.groups)
	if bus.Protocol == "rtu" {
		for _, g := range p.groups {
			g.cost = p.readWire(g.table, g.count)
		}
	}
	return p, nil
}

// readWire is the RTU wire time of a read of count items of table.
func (p *Poller) readWire(table string, count uint16) time.Duration {
	n := 2 * int(count)
	if isBits(table) {
		n = (int(count) + 7) / 8
	}
	return wireTime(p.bus.Baud, 8, 5+n)
}

func newPoint(bus config.Bus, s config.Sensor) (*point, error) {
	if s.Bus != bus.Name {
		return nil, fmt.Errorf("belongs to bus %q", s.Bus)
	}
	lo, hi := 0, 255
	if bus.Protocol == "rtu" {
		lo, hi = 1, 247
	}
	if s.Slave < lo || s.Slave > hi {
		return nil, fmt.Errorf("slave %d outside %d..%d", s.Slave, lo, hi)
	}
	if s.Address < 0 || s.Address > 0xFFFF {
		return nil, fmt.Errorf("address %d outside 0..65535", s.Address)
	}
	spec, err := decode.FromSensor(s)
	if err != nil {
		return nil, err
	}
	count := uint16(1)
	switch s.Table {
	case TableHolding, TableInput:
		w, err := decode.Words(s.Format)
		if err != nil {
			return nil, err
		}
		count = uint16(w)
	case TableCoil, TableDiscrete:
		if s.Format != "" && s.Format != decode.FormatBool {
			return nil, fmt.Errorf("format %q on a %s (want bool)", s.Format, s.Table)
		}
	default:
		return nil, fmt.Errorf("table %q (want holding, input, coil or discrete)", s.Table)
	}
	iv := s.Interval.D()
	if iv <= 0 {
		iv = DefaultInterval
	}
	return &point{cfg: s, spec: spec, slave: byte(s.Slave), table: s.Table,
		addr: uint16(s.Address), count: count, interval: iv}, nil
}

// Stats returns a copy of the bus counters. Safe for concurrent use.
func (p *Poller) Stats() BusStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats
	p.meter.fill(&st, time.Now())
	return st
}

// Read is a one-shot read of count registers (holding, input; 2 bytes
// each, big-endian) or bits (coil, discrete; packed LSB first) at the
// 0-based address addr of slave, queued onto the bus goroutine. Errors are
// those of a poll, ctx.Err(), or ErrClosed once Run has returned.
func (p *Poller) Read(ctx context.Context, slave byte, table string, addr, count uint16) ([]byte, error) {
	switch table {
	case TableHolding, TableInput, TableCoil, TableDiscrete:
	default:
		return nil, fmt.Errorf("bus %s: table %q (want holding, input, coil or discrete)", p.bus.Name, table)
	}
	r := p.submit(ctx, &job{ctx: ctx, slave: slave, table: table, addr: addr, count: count})
	return r.data, r.err
}

// WriteCoil sets coil addr of slave on or off (FC05), queued onto the bus
// goroutine ahead of pending polls. A write still queued when ctx ends is
// dropped; one already on the wire completes.
func (p *Poller) WriteCoil(ctx context.Context, slave byte, addr uint16, on bool) error {
	return p.submit(ctx, &job{ctx: ctx, slave: slave, table: TableCoil, addr: addr, write: true, on: on}).err
}

func (p *Poller) submit(ctx context.Context, j *job) jobResult {
	j.reply = make(chan jobResult, 1)
	select {
	case p.jobs <- j:
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

// Run polls the bus until ctx ends, reconnecting with backoff while the bus
// is down. It returns nil when ctx ends, or an error if called twice.
func (p *Poller) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return fmt.Errorf("bus %s: Run called twice", p.bus.Name)
	}
	defer close(p.done)
	defer p.failQueued()

	now := time.Now()
	for _, g := range p.groups {
		g.start, g.next = now, now
	}
	p.mu.Lock()
	p.meter.reset(now)
	p.mu.Unlock()
	slaves := map[byte]*slaveState{}
	backoff := ReconnectMin
	wasUp := true // log the first failure
	for ctx.Err() == nil {
		cl, err := dial(p.bus)
		if err != nil {
			err = fmt.Errorf("bus %s: %w", p.bus.Name, err)
			p.setDown(err)
			if wasUp {
				p.log.Warn("bus down, reconnecting with backoff", "err", err)
				wasUp = false
			}
			wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
			backoff = min(2*backoff, ReconnectMax)
			p.whileDown(ctx, time.Now().Add(wait), err)
			continue
		}
		p.mu.Lock()
		p.stats.Connected = true
		p.mu.Unlock()
		p.log.Info("bus up", "sensors", len(p.points), "reads", len(p.groups))
		backoff, wasUp = ReconnectMin, true
		err = p.serve(ctx, cl, slaves)
		cl.close()
		if err != nil {
			p.setDown(err)
			p.log.Warn("bus link failed, reopening", "err", err)
			wasUp = false
		}
	}
	p.mu.Lock()
	p.stats.Connected = false
	p.mu.Unlock()
	return nil
}

func (p *Poller) setDown(err error) {
	p.mu.Lock()
	p.stats.Connected = false
	p.stats.LastError = err.Error()
	p.mu.Unlock()
}

// failQueued answers the jobs left in the queue when Run returns.
func (p *Poller) failQueued() {
	for {
		select {
		case j := <-p.jobs:
			j.reply <- jobResult{err: fmt.Errorf("bus %s: %w", p.bus.Name, ErrClosed)}
		default:
			return
		}
	}
}

// whileDown waits until until (or ctx's end), answering queued jobs with
// the bus-down error and emitting a fault reading at each sensor tick.
func (p *Poller) whileDown(ctx context.Context, until time.Time, cause error) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		if !now.Before(until) {
			return
		}
		next := until
		if d, ok := p.nextDue(); ok && d.Before(next) {
			next = d
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case j := <-p.jobs:
			j.reply <- jobResult{err: cause}
		case <-timer.C:
			now = time.Now()
			for g := p.pick(now); g != nil; g = p.pick(now) {
				p.advance(g, now)
				for _, pt := range g.members {
					p.emitFault(pt, now, cause)
				}
			}
		}
	}
}

// serve polls on an open link until ctx ends (nil) or the link fails (an
// error wrapping ErrBusDown). Between two reads it runs the queued jobs
// (breaker writes go ahead of later polls) and takes the most urgent due
// read: gas reads first, then the earliest tick.
func (p *Poller) serve(ctx context.Context, cl *client, slaves map[byte]*slaveState) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if err := p.runQueued(ctx, cl, slaves); err != nil {
			return err
		}
		now := time.Now()
		if !now.Before(p.nextPlan) {
			p.plan(now)
		}
		if g := p.pick(now); g != nil {
			p.advance(g, now)
			if err := p.pollGroup(ctx, cl, slaves, g, now); err != nil {
				return err
			}
			continue
		}
		if d, ok := p.nextDue(); ok {
			timer.Reset(d.Sub(now))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return nil
		case j := <-p.jobs:
			if err := p.runJob(ctx, cl, slaves, j); err != nil {
				return err
			}
		case <-timer.C:
		}
	}
}

// runQueued runs the jobs already queued, without waiting for more.
func (p *Poller) runQueued(ctx context.Context, cl *client, slaves map[byte]*slaveState) error {
	for {
		select {
		case j := <-p.jobs:
			if err := p.runJob(ctx, cl, slaves, j); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// runJob runs a one-shot request; it returns an error only if the link failed.
func (p *Poller) runJob(ctx context.Context, cl *client, slaves map[byte]*slaveState, j *job) error {
	if err := j.ctx.Err(); err != nil {
		j.reply <- jobResult{err: err}
		return nil
	}
	rq := request{slave: j.slave, table: j.table, addr: j.addr, count: j.count, write: j.write, on: j.on}
	data, _, err := p.transact(ctx, cl, slaves, rq)
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

// pollGroup reads one request's sensors (merged, or one by one while the
// group is split) and emits their readings. It returns an error only if
// the link failed.
func (p *Poller) pollGroup(ctx context.Context, cl *client, slaves map[byte]*slaveState, g *group, now time.Time) error {
	if st := slaves[g.slave]; st != nil && now.Before(st.until) {
		err := fmt.Errorf("bus %s: slave %d: %w: not answering, %d timeouts in a row, next try in %v",
			p.bus.Name, g.slave, ErrTimeout, st.fails, st.until.Sub(now).Round(time.Millisecond))
		for _, pt := range g.members {
			p.emitFault(pt, now, err)
		}
		return nil
	}
	merged := len(g.members) > 1
	if !merged || !now.Before(g.splitUntil) {
		if merged && !g.splitUntil.IsZero() {
			g.splitUntil = time.Time{}
			p.addSplit(-1)
		}
		data, wire, err := p.transact(ctx, cl, slaves, request{slave: g.slave, table: g.table, addr: g.addr, count: g.count})
		g.observe(wire)
		if err == nil {
			for _, pt := range g.members {
				p.emitValue(pt, now, data, g.addr)
			}
			return nil
		}
		var ee *ExceptionError
		if !merged || !errors.As(err, &ee) || ee.Busy() {
			if merged {
				err = fmt.Errorf("bus %s: slave %d: read %s %d..%d: %w", p.bus.Name, g.slave, g.table, g.addr, g.addr+g.count-1, err)
			} else {
				err = fmt.Errorf("bus %s: slave %d: read %s %d: %w", p.bus.Name, g.slave, g.table, g.addr, err)
			}
			for _, pt := range g.members {
				p.emitFault(pt, now, err)
			}
			if errors.Is(err, ErrBusDown) {
				return err
			}
			return nil
		}
		// The slave refused the merged read (e.g. an unmapped register in
		// a gap): read the sensors one by one for a while.
		g.splitUntil = now.Add(SplitHold)
		p.addSplit(1)
		p.log.Warn("exception to a coalesced read; reading its sensors one by one",
			"slave", g.slave, "table", g.table, "addr", g.addr, "count", g.count, "err", err, "for", SplitHold)
	}
	var total time.Duration
	for _, pt := range g.members {
		if st := slaves[pt.slave]; st != nil && now.Before(st.until) {
			p.emitFault(pt, now, fmt.Errorf("bus %s: slave %d: %w: not answering, %d timeouts in a row",
				p.bus.Name, pt.slave, ErrTimeout, st.fails))
			continue
		}
		data, wire, err := p.transact(ctx, cl, slaves, request{slave: pt.slave, table: pt.table, addr: pt.addr, count: pt.count})
		total += wire
		if err != nil {
			err = fmt.Errorf("bus %s: slave %d: read %s %d: %w", p.bus.Name, pt.slave, pt.table, pt.addr, err)
			p.emitFault(pt, now, err)
			if errors.Is(err, ErrBusDown) {
				return err
			}
			continue
		}
		p.emitValue(pt, now, data, pt.addr)
	}
	g.observe(total)
	return nil
}

// observe folds the wire time of one poll into the group's cost estimate.
func (g *group) observe(wire time.Duration) {
	if g.cost == 0 {
		g.cost = wire
		return
	}
	g.cost += (wire - g.cost) / 5
}

func (p *Poller) addSplit(d int) {
	p.mu.Lock()
	p.stats.Split += d
	p.mu.Unlock()
}

// emitValue decodes pt from data (read from address base) and emits it.
func (p *Poller) emitValue(pt *point, at time.Time, data []byte, base uint16) {
	v, err := pt.value(data, base)
	if err != nil {
		p.emitFault(pt, at, err)
		return
	}
	p.emit(reading.Reading{Sensor: pt.cfg.ID, Type: pt.cfg.Type, Unit: pt.cfg.Unit,
		Time: at.Round(0), Value: v, Status: reading.StatusNormal})
}

func (p *Poller) emitFault(pt *point, at time.Time, err error) {
	p.emit(reading.Reading{Sensor: pt.cfg.ID, Type: pt.cfg.Type, Unit: pt.cfg.Unit,
		Time: at.Round(0), Status: reading.StatusFault, Err: err.Error()})
}

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

// transact runs one request with the busy retries, updates the counters
// and the slave's backoff. It returns the data read and the time the
// request held the bus (retries included).
func (p *Poller) transact(ctx context.Context, cl *client, slaves map[byte]*slaveState, rq request) ([]byte, time.Duration, error) {
	var held time.Duration
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		var data []byte
		var err error
		if rq.write {
			err = cl.writeCoil(rq.slave, rq.addr, rq.on)
		} else {
			data, err = cl.read(rq.slave, rq.table, rq.addr, rq.count)
		}
		end := time.Now()
		rtt := end.Sub(t0)
		wire := p.wire(rq, len(data), err, rtt)
		held += wire
		p.mu.Lock()
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
		if isBusy(err) && attempt < BusyRetries {
			t := time.NewTimer(BusyWait * time.Duration(attempt+1))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, held, err
			case <-t.C:
			}
			continue
		}
		switch {
		case errors.Is(err, ErrTimeout):
			st := slaves[rq.slave]
			if st == nil {
				st = &slaveState{}
				slaves[rq.slave] = st
			}
			st.fails++
			back := min(SlaveBackoffMin<<min(st.fails-1, 16), SlaveBackoffMax)
			st.until = time.Now().Add(back)
			p.log.Debug("slave not answering, backing off", "slave", rq.slave, "fails", st.fails, "backoff", back)
		case errors.Is(err, ErrBusDown):
		default: // a reply, even an exception: the slave is alive
			delete(slaves, rq.slave)
		}
		return data, held, err
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

// advance moves g to the first tick of its grid after now (every
// stretch-th tick when the bus is over-subscribed), counting the ticks
// skipped because the bus was late.
func (p *Poller) advance(g *group, now time.Time) {
	k := int64(now.Sub(g.start)/g.interval) + 1
	if g.stretch > 1 {
		k = (k + g.stretch - 1) / g.stretch * g.stretch
	}
	next := g.start.Add(time.Duration(k) * g.interval)
	step := g.interval * time.Duration(max(g.stretch, 1))
	if missed := int64(next.Sub(g.next)/step) - 1; missed > 0 {
		p.mu.Lock()
		p.stats.Missed += uint64(missed)
		p.mu.Unlock()
	}
	g.next = next
}

// nextDue returns the earliest next tick among the reads.
func (p *Poller) nextDue() (time.Time, bool) {
	var t time.Time
	for i, g := range p.groups {
		if i == 0 || g.next.Before(t) {
			t = g.next
		}
	}
	return t, len(p.groups) > 0
}

// pick returns the most urgent read due at now, or nil: a gas read before
// any other, then the earliest tick, then the shorter interval.
func (p *Poller) pick(now time.Time) *group {
	var best *group
	for _, g := range p.groups {
		if g.next.After(now) {
			continue
		}
		if best == nil || g.gas && !best.gas ||
			g.gas == best.gas && (g.next.Before(best.next) || g.next.Equal(best.next) && g.interval < best.interval) {
			best = g
		}
	}
	return best
}

// plan estimates the bus load of the schedule from the reads' recent
// wire times and, when it is above LoadTarget, stretches the non-gas reads
// to whole multiples of their interval so that the gas reads keep theirs.
// Gas reads are never stretched.
func (p *Poller) plan(now time.Time) {
	p.nextPlan = now.Add(ReplanEvery)
	var gas, other float64
	for _, g := range p.groups {
		l := g.cost.Seconds() / g.interval.Seconds()
		if g.gas {
			gas += l
		} else {
			other += l
		}
	}
	load := gas + other
	// Gas reads are never stretched: when they alone fill the bus they run
	// back to back (their late ticks counted in Missed) and the others get
	// the longest stretch.
	otherStretch := int64(1)
	if load > LoadTarget {
		otherStretch = MaxStretch
		if free := LoadTarget - gas; free > 0 {
			otherStretch = min(int64(math.Ceil(other/free)), MaxStretch)
		}
	}
	stretched := 0
	for _, g := range p.groups {
		g.stretch = otherStretch
		if g.gas {
			g.stretch = 1
		} else if limit := max(1, int64(MaxStretchedPeriod/g.interval)); g.stretch > limit {
			g.stretch = limit
		}
		if g.stretch > 1 {
			stretched += len(g.members)
		}
	}
	p.mu.Lock()
	p.stats.Load = load
	p.stats.Overloaded = load > LoadTarget
	p.stats.Stretched = stretched
	p.mu.Unlock()
	if load > LoadTarget && now.Sub(p.lastWarn) >= OverloadWarnEvery {
		p.lastWarn = now
		p.log.Warn("bus over-subscribed: gas sensors kept on their interval, others polled less often",
			"load", math.Round(load*100)/100, "target", LoadTarget, "gas_load", math.Round(gas*100)/100,
			"stretched_sensors", stretched, "stretch", otherStretch)
	}
}
