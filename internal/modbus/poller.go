package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
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

// BusStats are a bus's counters since Run started.
type BusStats struct {
	Requests  uint64        // transactions sent on the wire, retries included
	Errors    uint64        // transactions that returned no data (timeouts, exceptions, CRC, framing, I/O)
	Busy      uint64        // exception 6 replies (counted in Errors too)
	Timeouts  uint64        // transactions without a reply (counted in Errors too)
	Missed    uint64        // poll ticks skipped because the bus was behind schedule
	LastError string        // the last transaction or connect error, "" if none yet
	LastRTT   time.Duration // duration of the last transaction, request to reply
	Connected bool          // whether the port/connection is open
}

// Poller polls the sensors of one bus. One goroutine (Run) owns the bus:
// a serial bus carries one transaction at a time, and the one-shot Read and
// WriteCoil are queued onto the same goroutine. Each sensor is polled at
// its own interval on a fixed grid (start + k×interval, monotonic clock);
// a tick that cannot be served in time is skipped and counted, never
// bunched. Every poll emits one reading: the value, or a fault with the
// reason (never an invented value).
type Poller struct {
	bus     config.Bus
	points  []*point
	emit    func(reading.Reading)
	log     *slog.Logger
	jobs    chan *job
	done    chan struct{}
	started atomic.Bool

	mu    sync.Mutex
	stats BusStats
}

// point is one sensor and its schedule.
type point struct {
	cfg      config.Sensor
	spec     decode.Spec
	slave    byte
	table    string
	addr     uint16
	count    uint16
	interval time.Duration
	start    time.Time // grid origin, with a monotonic reading
	next     time.Time // next tick on the grid
}

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
	return p, nil
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
	return p.stats
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
	for _, pt := range p.points {
		pt.start, pt.next = now, now
	}
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
		p.log.Info("bus up")
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
			for _, pt := range p.due(now) {
				p.advance(pt, now)
				p.emitFault(pt, now, cause)
			}
		}
	}
}

// serve polls on an open link until ctx ends (nil) or the link fails (an
// error wrapping ErrBusDown).
func (p *Poller) serve(ctx context.Context, cl *client, slaves map[byte]*slaveState) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if err := p.runQueued(ctx, cl, slaves); err != nil {
			return err
		}
		if d, ok := p.nextDue(); ok {
			timer.Reset(time.Until(d))
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
			for _, pt := range p.due(time.Now()) {
				if ctx.Err() != nil {
					return nil
				}
				if err := p.poll(ctx, cl, slaves, pt); err != nil {
					return err
				}
				// Queued writes (breaker outputs) go ahead of later polls.
				if err := p.runQueued(ctx, cl, slaves); err != nil {
					return err
				}
			}
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
	var data []byte
	var err error
	if j.write {
		err = p.transact(ctx, slaves, j.slave, func() error {
			return cl.writeCoil(j.slave, j.addr, j.on)
		})
		if err != nil {
			err = fmt.Errorf("bus %s: slave %d: write coil %d: %w", p.bus.Name, j.slave, j.addr, err)
		}
	} else {
		err = p.transact(ctx, slaves, j.slave, func() error {
			var e error
			data, e = cl.read(j.slave, j.table, j.addr, j.count)
			return e
		})
		if err != nil {
			err = fmt.Errorf("bus %s: slave %d: read %s %d: %w", p.bus.Name, j.slave, j.table, j.addr, err)
		}
	}
	j.reply <- jobResult{data: data, err: err}
	if errors.Is(err, ErrBusDown) {
		return err
	}
	return nil
}

// poll reads one sensor and emits its reading. It returns an error only
// if the link failed.
func (p *Poller) poll(ctx context.Context, cl *client, slaves map[byte]*slaveState, pt *point) error {
	now := time.Now()
	p.advance(pt, now)
	if st := slaves[pt.slave]; st != nil && now.Before(st.until) {
		p.emitFault(pt, now, fmt.Errorf("bus %s: slave %d: %w: not answering, %d timeouts in a row, next try in %v",
			p.bus.Name, pt.slave, ErrTimeout, st.fails, st.until.Sub(now).Round(time.Millisecond)))
		return nil
	}
	var data []byte
	err := p.transact(ctx, slaves, pt.slave, func() error {
		var e error
		data, e = cl.read(pt.slave, pt.table, pt.addr, pt.count)
		return e
	})
	if err != nil {
		err = fmt.Errorf("bus %s: slave %d: read %s %d: %w", p.bus.Name, pt.slave, pt.table, pt.addr, err)
		p.emitFault(pt, now, err)
		if errors.Is(err, ErrBusDown) {
			return err
		}
		return nil
	}
	var v float64
	if pt.table == TableCoil || pt.table == TableDiscrete {
		v, err = pt.spec.Bit(data[0]&1 == 1)
	} else {
		v, err = pt.spec.Bytes(data)
	}
	if err != nil {
		p.emitFault(pt, now, err)
		return nil
	}
	p.emit(reading.Reading{Sensor: pt.cfg.ID, Type: pt.cfg.Type, Unit: pt.cfg.Unit,
		Time: now.Round(0), Value: v, Status: reading.StatusNormal})
	return nil
}

func (p *Poller) emitFault(pt *point, at time.Time, err error) {
	p.emit(reading.Reading{Sensor: pt.cfg.ID, Type: pt.cfg.Type, Unit: pt.cfg.Unit,
		Time: at.Round(0), Status: reading.StatusFault, Err: err.Error()})
}

// transact runs one request with the busy retries, updates the counters
// and the slave's backoff.
func (p *Poller) transact(ctx context.Context, slaves map[byte]*slaveState, slave byte, op func() error) error {
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		err := op()
		rtt := time.Since(t0)
		p.mu.Lock()
		p.stats.Requests++
		p.stats.LastRTT = rtt
		if err != nil {
			p.stats.Errors++
			p.stats.LastError = fmt.Sprintf("bus %s: slave %d: %v", p.bus.Name, slave, err)
			if isBusy(err) {
				p.stats.Busy++
			}
			if errors.Is(err, ErrTimeout) {
				p.stats.Timeouts++
			}
		}
		p.mu.Unlock()
		if isBusy(err) && attempt < BusyRetries {
			t := time.NewTimer(BusyWait * time.Duration(attempt+1))
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
			continue
		}
		switch {
		case errors.Is(err, ErrTimeout):
			st := slaves[slave]
			if st == nil {
				st = &slaveState{}
				slaves[slave] = st
			}
			st.fails++
			back := min(SlaveBackoffMin<<min(st.fails-1, 16), SlaveBackoffMax)
			st.until = time.Now().Add(back)
			p.log.Debug("slave not answering, backing off", "slave", slave, "fails", st.fails, "backoff", back)
		case errors.Is(err, ErrBusDown):
		default: // a reply, even an exception: the slave is alive
			delete(slaves, slave)
		}
		return err
	}
}

// advance moves pt to the first grid tick after now, counting the ticks
// skipped because the bus was late.
func (p *Poller) advance(pt *point, now time.Time) {
	k := now.Sub(pt.start)/pt.interval + 1
	next := pt.start.Add(k * pt.interval)
	if missed := int64(next.Sub(pt.next)/pt.interval) - 1; missed > 0 {
		p.mu.Lock()
		p.stats.Missed += uint64(missed)
		p.mu.Unlock()
	}
	pt.next = next
}

// nextDue returns the earliest next tick among the sensors.
func (p *Poller) nextDue() (time.Time, bool) {
	var t time.Time
	for i, pt := range p.points {
		if i == 0 || pt.next.Before(t) {
			t = pt.next
		}
	}
	return t, len(p.points) > 0
}

// due returns the sensors whose tick has come, earliest first.
func (p *Poller) due(now time.Time) []*point {
	var d []*point
	for _, pt := range p.points {
		if !pt.next.After(now) {
			d = append(d, pt)
		}
	}
	sort.SliceStable(d, func(i, j int) bool { return d[i].next.Before(d[j].next) })
	return d
}
