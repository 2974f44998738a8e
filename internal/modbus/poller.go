package modbus

import (
	"errors"
	"fmt"
	"log/slog"
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
	// device busy) is retried before the poll counts as missed; the waits
	// are BusyWait, 2×BusyWait, ... (cases F2: a busy slave is alive). A
	// queued coil write runs during the wait.
	BusyRetries = 2
	BusyWait    = 50 * time.Millisecond

	// ReconnectMin and ReconnectMax bound the capped exponential backoff
	// (with ±20 % jitter) between attempts to open a bus that is down.
	ReconnectMin = 100 * time.Millisecond
	ReconnectMax = 10 * time.Second

	// SlaveBackoffMin and SlaveBackoffMax bound how long a slave that
	// stopped answering is left alone: after fault_after polls in a row
	// without a reply (timeout, or gateway exception 10/11; the smallest
	// fault_after of its sensors), then doubling per further silent poll,
	// so that a dead slave costs the others on its bus at most one timeout
	// per backoff (cases F4). The max keeps a recovered sensor visible
	// within a third of the 30 s polling cycle of GB 50581-2010 §3.1.4.
	SlaveBackoffMin = time.Second
	SlaveBackoffMax = 10 * time.Second

	// DefaultInterval is the poll interval of a sensor without one.
	DefaultInterval = time.Second
)

// Poller polls the sensors of one bus. One goroutine (Run) owns the bus:
// a serial bus carries one transaction at a time, and the one-shot Read
// and WriteCoil are queued onto the same goroutine.
//
// Sensors of the same slave, table and interval whose addresses are close
// (config.Bus.MaxGap) are read in one request and decoded from it; an
// exception to such a merged read makes its sensors be read one by one for
// SplitHold, so one bad register does not fault its neighbours. Each
// request is polled on a fixed grid (start + k×interval); a tick that
// cannot be served in time is skipped and counted, never bunched. When
// the reads ask for more bus time than LoadTarget, the bus is
// over-subscribed: the reads holding on-time sensors (Options.OnTime)
// keep their interval and the others are stretched to a whole multiple of
// theirs, at most MaxStretchedPeriod (said in BusStats and a rate-limited
// warning).
//
// A poll emits one reading per sensor: the value, or a fault with the
// reason (never an invented value). A fault that is a fact about the value
// (NaN, no-value code, out of range, an exception other than 6, 10 and 11)
// or a bus that is down is emitted at once. A missed reply (timeout, CRC,
// malformed frame, gateway exception 10/11, busy after its retries) is
// retried once at once when no sensor of the read would become faulty by
// it and the retry fits before the next on-time tick; a poll that still
// failed emits nothing while its sensors have failed fewer than their
// fault_after polls in a row (counted in BusStats.MissedPolls), and a fault
// from then on.
//
// Coil writes go first: at every transaction boundary (before each poll,
// between the one-by-one reads of a split request, before a retry, during
// a busy wait) the queued writes run, so a write waits for at most the one
// transaction in flight.
type Poller struct {
	bus     config.Bus
	timeout time.Duration // per transaction
	points  []*point
	groups  []*group
	slaves  map[byte]*slaveState // bus goroutine
	emit    func(reading.Reading)
	log     *slog.Logger
	clock   Clock
	dial    func(config.Bus) (link, error)
	writes  chan *job // WriteCoil, run first at every transaction boundary
	probes  chan *job // Read, run before the next poll
	done    chan struct{}
	started atomic.Bool

	interrupted atomic.Bool // Interrupt closed the current link

	nextPlan time.Time // when the schedule is re-planned next (bus goroutine)
	lastWarn time.Time // last over-subscription warning (bus goroutine)
	replies  uint64    // transactions that got a reply (bus goroutine)

	mu    sync.Mutex
	link  link // the open link, nil while the bus is down
	live  Liveness
	stats BusStats
	meter meter
}

// Options are a Poller's optional settings.
type Options struct {
	// OnTime reports whether a sensor's reads are kept on time: never
	// stretched on an over-subscribed bus and picked before the other
	// reads due. config.Config.OnTime decides it (sensors whose rules cut
	// outputs, feed contacts, methane). nil keeps every read on time (no
	// stretching).
	OnTime func(sensorID string) bool
	// Log receives the poller's logs; nil discards them.
	Log *slog.Logger
	// Clock is the time source; nil is the wall clock.
	Clock Clock
}

// link is what the poller needs of an open bus link; *client is one.
type link interface {
	read(slave byte, table string, addr, count uint16) ([]byte, error)
	writeCoil(slave byte, addr uint16, on bool) error
	close() error
}

// dialClient opens the bus's client. Errors wrap ErrBusDown.
func dialClient(bus config.Bus) (link, error) {
	c, err := dial(bus)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// onceClosed closes its link once, whoever calls first (the bus goroutine
// or Interrupt).
type onceClosed struct {
	link
	once sync.Once
	err  error
}

func (o *onceClosed) close() error {
	o.once.Do(func() { o.err = o.link.close() })
	return o.err
}

// NewPoller checks the bus and its sensors and returns a poller for them.
// emit receives every reading on the bus goroutine and must not block for
// long (hand off to a channel or a fast store). Sensors of other buses are
// an error.
func NewPoller(bus config.Bus, sensors []config.Sensor, emit func(reading.Reading), opts Options) (*Poller, error) {
	if emit == nil {
		return nil, fmt.Errorf("bus %s: emit is nil", bus.Name)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := opts.Clock
	if clock == nil {
		clock = wallClock{}
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
		bus:     bus,
		timeout: txTimeout(bus),
		slaves:  map[byte]*slaveState{},
		emit:    emit,
		log:     log.With("bus", bus.Name),
		clock:   clock,
		dial:    dialClient,
		writes:  make(chan *job, 16),
		probes:  make(chan *job, 16),
		done:    make(chan struct{}),
	}
	var errs []error
	for _, s := range sensors {
		pt, err := newPoint(bus, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("bus %s: sensor %s: %w", bus.Name, s.ID, err))
			continue
		}
		pt.onTime = opts.OnTime == nil || opts.OnTime(s.ID)
		p.points = append(p.points, pt)
		if st := p.slave(pt.slave); st.threshold == 0 || pt.faultAfter < st.threshold {
			st.threshold = pt.faultAfter
		}
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

// txTimeout is the bus's per-transaction timeout: config.Bus.Timeout, or
// the protocol's default (config.DefaultTCPTimeout, DefaultRTUTimeout).
func txTimeout(bus config.Bus) time.Duration {
	switch {
	case bus.Timeout > 0:
		return bus.Timeout.D()
	case bus.Protocol == "rtu":
		return config.DefaultRTUTimeout
	}
	return config.DefaultTCPTimeout
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
	fa := s.FaultAfterOrDefault()
	if fa < 1 {
		return nil, fmt.Errorf("fault_after %d (want at least 1)", fa)
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
		addr: uint16(s.Address), count: count, interval: iv, faultAfter: fa}, nil
}

// Stats returns a copy of the bus counters. Safe for concurrent use.
func (p *Poller) Stats() BusStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats
	p.meter.fill(&st, p.clock.Now())
	return st
}

func (p *Poller) setDown(err error) {
	p.mu.Lock()
	p.stats.Connected = false
	p.stats.LastError = err.Error()
	p.mu.Unlock()
}

func (p *Poller) addSplit(d int) {
	p.mu.Lock()
	p.stats.Split += d
	p.mu.Unlock()
}
