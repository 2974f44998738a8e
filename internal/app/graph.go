package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/actuate"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/gpio"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/rules"
)

// graph is what a reload replaces: one config's safety path (rule engine,
// output manager) and its sources (a poller per bus, a reader per GPIO
// input), with the goroutines running them.
type graph struct {
	cfg     *config.Config
	safety  *safety
	outs    *actuate.Manager // nil without outputs
	pollers map[string]*modbus.Poller
	inputs  []*gpio.Input

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// build creates the graph of cfg. A configured GPIO line that this board
// does not have is an error naming it. GPIO outputs are driven cut at once.
//
// With prev (a reload; prev's safety path frozen by the caller), the new
// rule engine inherits prev's state and the outputs whose config is
// unchanged start in prev's state instead of cut: a reload does not
// switch power off and on.
func (a *App) build(cfg *config.Config, prev *graph) (*graph, error) {
	engine, err := rules.NewEngine(cfg.SensorRules())
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var inherited rules.Effects
	restored := map[string]bool{}
	if prev != nil {
		prev.safety.mu.Lock()
		inherited = engine.Inherit(prev.safety.engine, time.Now())
		prev.safety.mu.Unlock()
		for _, o := range cfg.Outputs {
			if cut, known := engine.Cut(o.Name); known && !cut && sameOutput(prev.cfg, o) {
				restored[o.Name] = true
			}
		}
	}
	g := &graph{cfg: cfg, pollers: map[string]*modbus.Poller{}}
	g.safety = newSafety(engine, nil, a.queueAlarm)
	g.safety.setGroups(cfg.WarningGroups)
	emit := func(r reading.Reading) { a.record(g, r) }
	buses := map[string]actuate.CoilBus{}
	for _, b := range cfg.Buses {
		var sensors []config.Sensor
		for _, s := range cfg.Sensors {
			if s.Bus == b.Name && s.GPIO == nil {
				sensors = append(sensors, s)
			}
		}
		p, err := modbus.NewPoller(b, sensors, emit, modbus.Options{OnTime: cfg.OnTime, Log: a.log})
		if err != nil {
			return nil, fmt.Errorf("bus %s: %w", b.Name, err)
		}
		g.pollers[b.Name] = p
		buses[b.Name] = p
	}
	var pins gpio.Lookup
	if usesGPIO(cfg) {
		if pins, err = gpio.Host(); err != nil {
			return nil, err
		}
	}
	for _, s := range cfg.Sensors {
		if s.GPIO == nil {
			continue
		}
		in, err := gpio.NewInput(s, pins, emit, a.log)
		if err != nil {
			return nil, fmt.Errorf("sensor %s: %w", s.ID, err)
		}
		g.inputs = append(g.inputs, in)
	}
	if len(cfg.Outputs) > 0 {
		m, err := actuate.NewManager(cfg.Outputs, actuate.Options{
			Pins: pins, Buses: buses, OnFeed: g.safety.feed, Log: a.log.With("component", "outputs"),
			Restored: restored,
		})
		if err != nil {
			return nil, fmt.Errorf("outputs: %w", err)
		}
		g.outs = m
		g.safety.outs = m
	}
	if prev != nil {
		g.safety.inheritAlarms(prev.safety, cfg)
		g.safety.mu.Lock()
		g.safety.effects(inherited) // what the new rules imply at the last values
		g.safety.resync()           // an output whose config changed starts cut: bring it in line
		g.safety.mu.Unlock()
	}
	return g, nil
}

// sameOutput reports whether prev configures output o identically.
func sameOutput(prev *config.Config, o config.Output) bool {
	for _, p := range prev.Outputs {
		if p.Name == o.Name {
			return reflect.DeepEqual(p, o)
		}
	}
	return false
}

func usesGPIO(cfg *config.Config) bool {
	for _, s := range cfg.Sensors {
		if s.GPIO != nil {
			return true
		}
	}
	for _, o := range cfg.Outputs {
		if o.GPIO != nil {
			return true
		}
	}
	return false
}

// start runs the safety loop and every source under a child of ctx. A
// source's fatal error is sent to failed (if it has room).
func (g *graph) start(ctx context.Context, failed chan<- error) {
	ctx, g.cancel = context.WithCancel(ctx)
	run := func(name string, f func(context.Context) error) {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				select {
				case failed <- fmt.Errorf("%w: %s: %w", errSourceFailed, name, err):
				default:
				}
			}
		}()
	}
	run("safety loop", func(ctx context.Context) error { g.safety.run(ctx); return nil })
	for name, p := range g.pollers {
		run("bus "+name, p.Run)
	}
	for _, in := range g.inputs {
		run("gpio input", in.Run)
	}
}

// stopSources stops the graph's sources and safety loop and waits.
func (g *graph) stopSources() {
	if g.cancel != nil {
		g.cancel()
	}
	g.wg.Wait()
}

// releaseOutputs hands the graph's outputs over to the new graph's (next)
// manager: an output next configures identically is left as it is; any
// other (removed or moved) is cut and confirmed first, through the graph's
// own bus pollers, which must still run.
func (g *graph) releaseOutputs(next *config.Config, log *slog.Logger) {
	if g.outs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keep := func(name string) bool {
		for _, o := range g.cfg.Outputs {
			if o.Name == name {
				return sameOutput(next, o)
			}
		}
		return false
	}
	if err := g.outs.Release(ctx, keep); err != nil {
		log.Error("reload: outputs not handed over were not all confirmed cut", "err", err)
	}
}

// freeze stops the safety path for a reload: its rule engine stops taking
// readings (so the new engine inherits a state that no longer moves) and it
// no longer drives the outputs. thaw undoes it if the reload fails.
func (g *graph) freeze() {
	g.safety.mu.Lock()
	g.safety.outs, g.safety.frozen = nil, true
	g.safety.mu.Unlock()
}

func (g *graph) thaw() {
	g.safety.mu.Lock()
	defer g.safety.mu.Unlock()
	g.safety.outs, g.safety.frozen = g.outs, false
	if g.outs != nil {
		g.safety.resync()
	}
}

// stop cuts every output (the safe state) while the sources still run, so
// breaker coils can be written through their bus pollers, then stops the
// sources and waits for them.
func (g *graph) stop(log *slog.Logger) {
	g.closeOutputs(log)
	if g.cancel != nil {
		g.cancel()
	}
	g.wg.Wait()
}

func (g *graph) closeOutputs(log *slog.Logger) {
	if g.outs == nil {
		return
	}
	g.safety.mu.Lock()
	g.safety.outs = nil // readings still arriving no longer drive outputs
	g.safety.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.outs.Close(ctx); err != nil {
		log.Error("outputs: not all confirmed cut", "err", err)
	}
}
