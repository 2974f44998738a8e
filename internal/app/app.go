// Package app wires hazmon's components into one agent and owns their
// goroutines: Modbus pollers (sources) → telemetry into the bbolt buffer →
// MQTT publisher (sink). Sinks start before sources; on shutdown sources
// stop first, then the buffer's queue is committed, then the publisher says
// offline and disconnects.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hazmon/hazmon/internal/actuate"
	"github.com/hazmon/hazmon/internal/buildinfo"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/gpio"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/publish"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/rules"
	"github.com/hazmon/hazmon/internal/store"
)

// BufferFile is the name of the bbolt buffer inside agent.data_dir.
const BufferFile = "buffer.db"

// Options are the App's dependencies beyond the config.
type Options struct {
	Logger     *slog.Logger // default slog.Default()
	ConfigPath string       // for reload and status
	// DrainTimeout bounds how long shutdown waits for the publisher to send
	// what is already buffered (default 2s); the rest stays in the buffer.
	DrainTimeout time.Duration
}

// App is one running agent. Create it with New, run it with Run; Run
// returns after ctx ends and everything is stopped and flushed.
type App struct {
	cfg  *config.Config
	opts Options
	log  *slog.Logger

	store   *store.Store
	pub     *publish.Publisher
	pollers []*modbus.Poller
	inputs  []*gpio.Input // digital sensors on GPIO lines
	safety  *safety
	outs    *actuate.Manager // nil without outputs

	appendErrs atomic.Uint64 // readings the buffer refused (busy or write error)
	errLog     rateLimit

	ctl controlState // control socket (control.go)
}

// New opens the buffer (failing fast with store.ErrInUse if another agent
// holds it) and builds the pollers and the publisher. It starts nothing.
func New(cfg *config.Config, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 2 * time.Second
	}
	a := &App{cfg: cfg, opts: opts, log: opts.Logger}
	a.errLog.every = 10 * time.Second

	if err := os.MkdirAll(cfg.Agent.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	st, err := store.Open(filepath.Join(cfg.Agent.DataDir, BufferFile), store.Options{
		MaxBytes: cfg.Buffer.MaxBytes, MaxAge: cfg.Buffer.MaxAge.D(), Logger: a.log,
	})
	if err != nil {
		return nil, err
	}
	a.store = st
	if r := st.Reset(); r != nil {
		a.log.Error("buffer file unreadable: moved aside, started a fresh one", "moved_to", r.MovedTo, "err", r.Cause)
		a.event(contract.Event{Type: contract.EventBufferReset, TS: time.Now().UnixMilli(),
			Reason: "corrupt", Detail: fmt.Sprintf("moved to %s: %v", filepath.Base(r.MovedTo), r.Cause)})
	}

	ids := make([]string, 0, len(cfg.Sensors))
	for _, s := range cfg.Sensors {
		ids = append(ids, s.ID)
	}
	po, err := publish.OptionsFromConfig(cfg.MQTT, cfg.Agent, buildinfo.Version(), ids)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	po.Logger = a.log.With("component", "mqtt")
	if a.pub, err = publish.New(st, po); err != nil {
		st.Close()
		return nil, err
	}

	if err := a.build(); err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

// build creates the safety path and the sources: rule engine, outputs,
// bus pollers and GPIO inputs. A configured GPIO line that this board does
// not have is a start-up error naming it.
func (a *App) build() error {
	engine, err := rules.NewEngine(a.cfg.SensorRules())
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	buses := map[string]actuate.CoilBus{}
	for _, b := range a.cfg.Buses {
		var sensors []config.Sensor
		for _, s := range a.cfg.Sensors {
			if s.Bus == b.Name && s.GPIO == nil {
				sensors = append(sensors, s)
			}
		}
		p, err := modbus.NewPoller(b, sensors, a.record, a.log)
		if err != nil {
			return fmt.Errorf("bus %s: %w", b.Name, err)
		}
		a.pollers = append(a.pollers, p)
		buses[b.Name] = p
	}
	var pins gpio.Lookup
	if usesGPIO(a.cfg) {
		if pins, err = gpio.Host(); err != nil {
			return err
		}
	}
	a.safety = newSafety(engine, nil, a.queueAlarm)
	if len(a.cfg.Outputs) > 0 {
		m, err := actuate.NewManager(a.cfg.Outputs, actuate.Options{
			Pins: pins, Buses: buses, OnFeed: a.safety.feed, Log: a.log.With("component", "outputs"),
		})
		if err != nil {
			return fmt.Errorf("outputs: %w", err)
		}
		a.outs = m
		a.safety.outs = m
	}
	for _, s := range a.cfg.Sensors {
		if s.GPIO == nil {
			continue
		}
		in, err := gpio.NewInput(s, pins, a.record, a.log)
		if err != nil {
			a.closeOutputs()
			return fmt.Errorf("sensor %s: %w", s.ID, err)
		}
		a.inputs = append(a.inputs, in)
	}
	return nil
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

// closeOutputs cuts every output (the safe state) and stops the actuators.
// The bus pollers must still run so breaker coils can be written.
func (a *App) closeOutputs() {
	if a.outs == nil {
		return
	}
	a.safety.mu.Lock()
	a.safety.outs = nil // readings still arriving no longer drive outputs
	a.safety.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.outs.Close(ctx); err != nil {
		a.log.Error("outputs: not all cut on shutdown", "err", err)
	}
}


// Run starts the publisher and the pollers and blocks until ctx ends, then
// shuts down in order and closes the buffer. It returns the first fatal error.
func (a *App) Run(ctx context.Context) error {
	defer a.store.Close()
	defer a.startControl(ctx)() // control socket first: answers "starting" (control.go)
	a.log.Info("hazmon starting", "version", buildinfo.Version(), "agent", a.cfg.Agent.ID,
		"site", a.cfg.Agent.Site, "buses", len(a.cfg.Buses), "sensors", len(a.cfg.Sensors),
		"buffer", a.store.Path())

	// Sink first: the publisher runs until the sources are stopped and the
	// backlog had its chance to drain.
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	pubDone := make(chan error, 1)
	go func() { pubDone <- a.pub.Run(pubCtx) }()

	// Sources outlive ctx until the outputs are cut: a breaker coil is
	// written through its bus poller.
	srcCtx, stopSrc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrc()
	var wg sync.WaitGroup
	errs := make(chan error, len(a.pollers)+len(a.inputs))
	start := func(run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(srcCtx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
				stopSrc()
			}
		}()
	}
	// The safety loop's ticker lives as long as the sources.
	start(func(ctx context.Context) error { a.safety.run(ctx); return nil })
	for _, p := range a.pollers {
		start(p.Run)
	}
	for _, in := range a.inputs {
		start(in.Run)
	}
	a.log.Info("hazmon running")
	a.ctl.setState(control.StateRunning)

	var runErr error
	select {
	case <-ctx.Done():
	case <-srcCtx.Done(): // a source failed
	case err := <-pubDone:
		runErr = fmt.Errorf("publisher stopped: %w", err)
		pubDone <- nil
	}
	a.log.Info("hazmon stopping")
	a.ctl.setState(control.StateStopping)
	a.closeOutputs() // safe state first, while the buses still run
	stopSrc()
	wg.Wait()
	select {
	case err := <-errs:
		runErr = errors.Join(runErr, err)
	default:
	}
	a.drain()
	stopPub()
	<-pubDone
	a.log.Info("hazmon stopped")
	return runErr
}

// drain gives the publisher up to DrainTimeout to send what is buffered.
func (a *App) drain() {
	deadline := time.Now().Add(a.opts.DrainTimeout)
	for time.Now().Before(deadline) {
		st, err := a.store.Stats()
		if err != nil || !a.pub.Link().Connected {
			return
		}
		if p, o := st.Depth(); p+o == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// record is called by the pollers with every reading: it is buffered for
// publishing and becomes the sensor's current value. It never blocks on
// the disk or the network.
func (a *App) record(r reading.Reading) {
	r.Status = a.safety.apply(r)
	a.ctl.observe(r) // last value for the control socket (control.go)
	c := contract.FromReading(r)
	a.pub.UpdateCurrent(c)
	data, err := contract.Marshal(c)
	if err == nil {
		err = a.store.AppendAsync(store.Telemetry, r.Time, data, a.appendDone)
	}
	if err != nil {
		a.appendDone(err)
	}
}

func (a *App) appendDone(err error) {
	if err == nil {
		return
	}
	n := a.appendErrs.Add(1)
	if a.errLog.allow() {
		a.log.Error("buffer: reading not stored", "err", err, "total_lost", n)
	}
}

// queueAlarm queues an alarm for the alarm stream, which is published
// before any telemetry backlog.
func (a *App) queueAlarm(al contract.Alarm) {
	a.log.Warn("alarm", "sensor", al.Sensor, "level", al.Level, "state", al.State, "alarm_id", al.AlarmID)
	data, err := contract.Marshal(al)
	if err == nil {
		err = a.store.AppendAsync(store.Alarm, time.UnixMilli(al.TS), data, a.appendDone)
	}
	if err != nil {
		a.appendDone(err)
	}
}

// event queues an agent event (buffer reset, data loss, ...) for the event stream.
func (a *App) event(e contract.Event) {
	data, err := contract.Marshal(e)
	if err == nil {
		err = a.store.AppendAsync(store.Event, time.UnixMilli(e.TS), data, a.appendDone)
	}
	if err != nil {
		a.appendDone(err)
	}
}

// rateLimit lets one log line through per interval.
type rateLimit struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
}

func (r *rateLimit) allow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.last) < r.every {
		return false
	}
	r.last = now
	return true
}
