package app

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/hazmon/hazmon/internal/actuate"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/gpio"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/mtt"
	"github.com/hazmon/hazmon/internal/points"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

// plant is one config's hardware: a poller per bus, a lane per output, a
// reader per GPIO input. A reload builds a new plant that takes over the
// parts whose config is unchanged (running as they are) and retires the
// others.
type plant struct {
	cfg     *config.Config
	routes  map[string]*busRoute  // bus name → the coil access lanes use (carried across reloads)
	pollers map[string]*busPart   // bus name →
	lanes   map[string]*lanePart  // output name →
	inputs  map[string]*inputPart // sensor id →
	pins    gpio.Lookup
	reg     points.Registry // the hazard-point registry of cfg
	codes   *mtt.Codes      // the regulator's code table (registryOf)
}

// part is a running goroutine of the plant: its cancel and its end.
type part struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *part) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

type busPart struct {
	part
	cfg     config.Bus
	sensors []config.Sensor // acquisition view (acquisitionOnly)
	onTime  []bool          // each sensor's role: kept on time (config.Config.OnTime)
	poller  *modbus.Poller
	src     *safety.Source
	started bool
}

type lanePart struct {
	part
	cfg     config.Output
	lane    *actuate.Lane
	started bool
}

type inputPart struct {
	part
	cfg     config.Sensor
	in      *gpio.Input
	src     *safety.Source
	started bool
}

// acquisitionOnly is a sensor's config without what only the safety core
// reads, so that a rule edit keeps its bus poller running.
func acquisitionOnly(s config.Sensor) config.Sensor {
	s.Rules, s.Location, s.CutOutputs, s.OverrideRegulation = nil, "", nil, false
	s.FaultUnlockAfter, s.Resolution = 0, 0
	return s
}

// buildPlant opens cfg's hardware, taking over from prev (nil at start)
// the pollers, lanes and inputs whose config is unchanged. GPIO outputs it
// opens are written cut at once. Sources of new pollers and inputs are
// created on core when it is not nil (else by attachSources). Nothing is
// started. On error, what it opened is closed again (GPIO outputs stay cut).
func (a *App) buildPlant(cfg *config.Config, prev *plant, core *safety.Core) (*plant, error) {
	p := &plant{cfg: cfg, routes: map[string]*busRoute{}, pollers: map[string]*busPart{}, lanes: map[string]*lanePart{}, inputs: map[string]*inputPart{}}
	if prev != nil {
		p.pins = prev.pins
	}
	p.reg, p.codes = registryOf(cfg)
	for _, b := range cfg.Buses {
		if r := prev.route(b.Name); r != nil {
			p.routes[b.Name] = r
		} else {
			p.routes[b.Name] = &busRoute{name: b.Name}
		}
	}
	if p.pins == nil && usesGPIO(cfg) {
		pins, err := gpio.Host()
		if err != nil {
			return nil, err
		}
		p.pins = pins
	}
	for _, b := range cfg.Buses {
		var sensors []config.Sensor
		var onTime []bool
		for _, s := range cfg.Sensors {
			if s.Bus == b.Name && s.GPIO == nil {
				sensors = append(sensors, acquisitionOnly(s))
				onTime = append(onTime, cfg.OnTime(s.ID))
			}
		}
		if old := prev.bus(b.Name); old != nil && reflect.DeepEqual(old.cfg, b) &&
			reflect.DeepEqual(old.sensors, sensors) && slices.Equal(old.onTime, onTime) {
			p.pollers[b.Name] = old
			continue
		}
		bp := &busPart{cfg: b, sensors: sensors, onTime: onTime}
		pl, err := modbus.NewPoller(b, sensorsOf(cfg, b.Name), func(r reading.Reading) {
			injectFault(faultPoller)
			bp.src.Offer(r)
		}, modbus.Options{OnTime: cfg.OnTime, Log: a.log})
		if err != nil {
			return nil, fmt.Errorf("bus %s: %w", b.Name, err)
		}
		bp.poller = pl
		if core != nil {
			bp.src = core.NewSource("bus " + b.Name)
		}
		p.pollers[b.Name] = bp
	}
	buses := map[string]actuate.CoilBus{}
	for name, r := range p.routes {
		buses[name] = r
		if r.current() == nil { // a new bus: the lanes reach it as soon as it exists
			r.set(p.pollers[name].poller)
		}
	}
	for _, o := range cfg.Outputs {
		// A lane runs on as long as its output and the bus its coil is on
		// are configured the same (a new poller for other sensors of that
		// bus does not matter: the lane reaches the bus by name).
		if old := prev.lane(o.Name); old != nil && reflect.DeepEqual(old.cfg, o) &&
			(o.Modbus == nil || reflect.DeepEqual(cfg.Bus(o.Modbus.Bus), prev.cfg.Bus(o.Modbus.Bus))) {
			p.lanes[o.Name] = old
			continue
		}
		l, err := actuate.NewLane(o, actuate.Resources{Pins: p.pins, Buses: buses}, actuate.LaneOptions{
			Report: func(ob safety.Observation) { a.observe(ob) }, Log: a.log.With("component", "outputs"),
		})
		if err != nil {
			return nil, fmt.Errorf("outputs: %w", err)
		}
		p.lanes[o.Name] = &lanePart{cfg: o, lane: l}
	}
	for _, s := range cfg.Sensors {
		if s.GPIO == nil {
			continue
		}
		if old := prev.input(s.ID); old != nil && reflect.DeepEqual(acquisitionOnly(old.cfg), acquisitionOnly(s)) {
			p.inputs[s.ID] = old
			continue
		}
		ip := &inputPart{cfg: s}
		in, err := gpio.NewInput(s, p.pins, func(r reading.Reading) { ip.src.Offer(r) }, a.log)
		if err != nil {
			return nil, fmt.Errorf("sensor %s: %w", s.ID, err)
		}
		ip.in = in
		if core != nil {
			ip.src = core.NewSource("gpio " + s.ID)
		}
		p.inputs[s.ID] = ip
	}
	return p, nil
}

// attachSources gives the plant's pollers and inputs their queues into core.
func (p *plant) attachSources(core *safety.Core) {
	for name, bp := range p.pollers {
		if bp.src == nil {
			bp.src = core.NewSource("bus " + name)
		}
	}
	for id, ip := range p.inputs {
		if ip.src == nil {
			ip.src = core.NewSource("gpio " + id)
		}
	}
}

func (p *plant) route(name string) *busRoute {
	if p == nil {
		return nil
	}
	return p.routes[name]
}

func (p *plant) bus(name string) *busPart {
	if p == nil {
		return nil
	}
	return p.pollers[name]
}

func (p *plant) lane(name string) *lanePart {
	if p == nil {
		return nil
	}
	return p.lanes[name]
}

func (p *plant) input(id string) *inputPart {
	if p == nil {
		return nil
	}
	return p.inputs[id]
}

// laneMap is the plant's lanes as the safety core takes them.
func (p *plant) laneMap() map[string]safety.Lane {
	m := make(map[string]safety.Lane, len(p.lanes))
	for name, lp := range p.lanes {
		m[name] = lp.lane
	}
	return m
}

func sensorsOf(cfg *config.Config, bus string) []config.Sensor {
	var out []config.Sensor
	for _, s := range cfg.Sensors {
		if s.Bus == bus && s.GPIO == nil {
			out = append(out, s)
		}
	}
	return out
}

func usesGPIO(cfg *config.Config) bool {
	return slices.ContainsFunc(cfg.Sensors, func(s config.Sensor) bool { return s.GPIO != nil }) ||
		slices.ContainsFunc(cfg.Outputs, func(o config.Output) bool { return o.GPIO != nil })
}

// startLanes runs the plant's lanes not yet running, under ctx.
func (a *App) startLanes(ctx context.Context, p *plant) {
	for name, lp := range p.lanes {
		if !lp.started {
			lp.started = true
			lp.part = a.spawnPart(ctx, "output "+name, lp.lane.Run)
		}
	}
}

// startSources points every bus route at its poller and runs the plant's
// pollers and inputs not yet running, under ctx.
func (a *App) startSources(ctx context.Context, p *plant) {
	for name, r := range p.routes {
		r.set(p.pollers[name].poller)
	}
	for name, bp := range p.pollers {
		if !bp.started {
			bp.started = true
			bp.part = a.spawnPart(ctx, "bus "+name, bp.poller.Run)
		}
	}
	for id, ip := range p.inputs {
		if !ip.started {
			ip.started = true
			ip.part = a.spawnPart(ctx, "gpio input "+id, ip.in.Run)
		}
	}
}

// retireLanes cuts and confirms the lanes of old that next does not take
// over (through the buses, still polling), then stops them. It returns the
// error of lanes not confirmed cut.
func (a *App) retireLanes(ctx context.Context, old, next *plant) error {
	var errs []error
	for name, lp := range old.lanes {
		if next.lane(name) == lp {
			continue
		}
		if err := lp.lane.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		lp.stop()
	}
	if len(errs) > 0 {
		return fmt.Errorf("outputs: %w", joinErrs(errs))
	}
	return nil
}

// retireInputs stops the GPIO inputs of old that next does not take over
// (a line serves one request at a time) and closes their sources.
func (a *App) retireInputs(old, next *plant) {
	for id, ip := range old.inputs {
		if next.input(id) != ip {
			ip.stop()
			if ip.src != nil {
				ip.src.Close()
			}
		}
	}
}

// retirePollers stops the pollers of old that next does not take over and
// closes their sources.
func (a *App) retirePollers(old, next *plant) {
	for name, bp := range old.pollers {
		if next.bus(name) != bp {
			bp.stop()
			if bp.src != nil {
				bp.src.Close()
			}
		}
	}
}

// discard releases the parts of a plant that was built but never used
// (a refused reload): new lanes are cut (GPIO: already), nothing runs.
func (a *App) discard(p, kept *plant) {
	for name, lp := range p.lanes {
		if kept.lane(name) != lp {
			lp.lane.EmergencyCut()
		}
	}
	for name, bp := range p.pollers {
		if kept.bus(name) != bp && bp.src != nil {
			bp.src.Close()
		}
	}
	for id, ip := range p.inputs {
		if kept.input(id) != ip && ip.src != nil {
			ip.src.Close()
		}
	}
}

// busRoute is how a lane reaches the coils of a bus: by name, through
// whichever poller serves the bus now, so a reload that replaces the poller
// (other sensors on the bus changed) leaves the lane, and its output,
// running. A write in the moment between two pollers fails with
// modbus.ErrClosed and the lane retries.
type busRoute struct {
	name string
	p    atomic.Pointer[modbus.Poller]
}

func (r *busRoute) set(p *modbus.Poller)    { r.p.Store(p) }
func (r *busRoute) current() *modbus.Poller { return r.p.Load() }
func (r *busRoute) WriteCoil(ctx context.Context, slave byte, addr uint16, on bool) error {
	p := r.current()
	if p == nil {
		return fmt.Errorf("bus %s: %w", r.name, modbus.ErrClosed)
	}
	return p.WriteCoil(ctx, slave, addr, on)
}
func (r *busRoute) Read(ctx context.Context, slave byte, table string, addr, count uint16) ([]byte, error) {
	p := r.current()
	if p == nil {
		return nil, fmt.Errorf("bus %s: %w", r.name, modbus.ErrClosed)
	}
	return p.Read(ctx, slave, table, addr, count)
}
