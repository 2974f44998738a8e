// Package app wires hazmon's components into one agent and owns their
// goroutines. Safety comes first: New opens every output and writes the
// GPIO ones cut; Run starts the safety core, the output lanes and the
// sources (bus pollers, GPIO inputs) before anything else, so coils are cut
// within one bus transaction of start, and only then opens the bbolt buffer
// (an unusable buffer is not a reason to stop monitoring), loads TLS and
// connects to the broker. On shutdown the outputs are cut first (while the
// buses still run), then the sources stop, the buffer's queue is committed,
// and the publisher says offline and disconnects.
//
// Data flows one way. Safety path: source → safety core → output lanes; it
// never waits on the log, the disk or the network. Telemetry path: the
// core's outbox → recorder → buffer (committed) → publisher → ack.
//
// A panic in any goroutine the App starts is recovered at its root: every
// output is cut, the panic is logged, and Run returns an error (the process
// exits non-zero). A reload (SIGHUP, `hazmon reload`) validates the new file
// first and swaps the rules inside the safety core without a pause (see
// Reload).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hazmon/hazmon/internal/buildinfo"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/mtt"
	"github.com/hazmon/hazmon/internal/publish"
	"github.com/hazmon/hazmon/internal/safety"
	"github.com/hazmon/hazmon/internal/sdnotify"
	"github.com/hazmon/hazmon/internal/stats"
	"github.com/hazmon/hazmon/internal/store"
)

// Files the agent keeps in agent.data_dir.
const (
	BufferFile  = "buffer.db"    // the bbolt store-and-forward buffer
	StateFile   = "state.json"   // how the agent last stopped and the alarms then active
	OutputsFile = "outputs.json" // the outputs of the last good config, to cut them even if the next config is bad
)

// Defaults of Options.
const (
	DefaultDrainTimeout = 2 * time.Second
	// DefaultCutTimeout bounds how long shutdown waits for every output to
	// be confirmed cut before it stops the buses regardless.
	DefaultCutTimeout = 3 * time.Second
)

// Options are the App's dependencies beyond the config.
type Options struct {
	Logger     *slog.Logger // default slog.Default()
	ConfigPath string       // file Reload re-reads
	// DrainTimeout bounds how long shutdown waits for the publisher to send
	// what is already buffered (default DefaultDrainTimeout); the rest stays
	// in the buffer.
	DrainTimeout time.Duration
	// CutTimeout bounds the wait for outputs confirmed cut at shutdown and
	// for outputs a reload retires (default DefaultCutTimeout).
	CutTimeout time.Duration
	// LogDropped returns how many log lines were dropped because the log
	// sink stalled (asynclog.Writer.Dropped), shown in Status.Log; nil: 0.
	LogDropped func() uint64
	// Memory applies agent.memory_limit at start and after a reload
	// (RuntimeMemoryLimiter in the agent; the zero value leaves the
	// runtime's limit alone).
	Memory MemoryLimiter
}

// App is one running agent. Create it with New, run it with Run; Run
// returns after ctx ends and everything is stopped and flushed.
type App struct {
	opts Options
	log  *slog.Logger

	lock    *instanceLock
	prev    previous // how the last run ended (state.go)
	cfgHash string   // contract.ConfigHash of the running config file (guarded by mu)
	core    *safety.Core
	super   *safety.Source // the bus supervisor's faults
	state   *stateKeeper

	mu       sync.Mutex            // guards pl, st, pub, life
	pl       *plant                // current config's hardware
	plantNow atomic.Pointer[plant] // pl, for emergencyCut (which must not wait for mu)
	st       *store.Store
	pub      *publish.Publisher
	life     context.Context // the plant's context (Run)
	parts    sync.WaitGroup  // every goroutine spawnPart started

	failed    chan error    // the first fatal error: a source's, or a recovered panic
	superWake chan struct{} // a reload changed the buses: the supervisor looks now (supervise.go)
	reloadMu  sync.Mutex    // one Reload at a time
	stopping  bool          // shutdown has begun: Reload refuses (guarded by reloadMu)

	loss       lossTally     // records the buffer refused, reported as data_loss
	appendErrs atomic.Uint64 // records the buffer refused since start
	errLog     rateLimit

	ctl     controlState // control socket (control.go)
	outputs outputsTopic // the retained …/outputs message (outputs_topic.go)
	met     metricsState // Prometheus metrics (metrics.go)

	exporters []*mtt.Exporter   // regulator uplinks (uplinks.go), set before the recorder starts
	agg       *stats.Aggregator // statistics windows (owned by the recorder goroutine)
	recBuf    []byte            // the recorder goroutine's encoding scratch
}

// New opens every output of cfg (GPIO outputs are written cut before it
// returns), the bus pollers and GPIO inputs, reads how the agent last
// stopped, and builds the safety core. It starts nothing. A configured GPIO
// line that this board does not have is an error naming it.
func New(cfg *config.Config, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.CutTimeout <= 0 {
		opts.CutTimeout = DefaultCutTimeout
	}
	a := &App{opts: opts, log: opts.Logger, failed: make(chan error, 1), superWake: make(chan struct{}, 1)}
	a.errLog.every = 10 * time.Second
	lock, warn, err := lockInstance(cfg.Agent.DataDir)
	if err != nil {
		return nil, err // another agent runs here: touch no output
	}
	if warn != nil {
		a.log.Error("data_dir unusable: monitoring goes on, but a second agent on this data_dir would not be detected", "err", warn)
	}
	a.lock = lock
	pl, err := a.buildPlant(cfg, nil, nil)
	if err != nil {
		lock.release()
		return nil, err
	}
	a.pl = pl
	a.plantNow.Store(pl)
	a.state = newStateKeeper(cfg.Agent.DataDir, a.log)
	prev := a.state.load(time.Now())
	a.prev = prev
	a.cfgHash = configHash(opts.ConfigPath, cfg)
	core, err := safety.New(cfg.SafetySpec(), pl.laneMap(), safety.Options{
		HoldUntil: prev.holdUntil, HoldReason: prev.holdReason, PreviousAlarms: prev.alarms, Latched: prev.latched,
	})
	if err != nil {
		a.discard(pl, nil)
		lock.release()
		return nil, err
	}
	a.core = core
	pl.attachSources(core)
	a.super = core.NewSource("bus supervisor")
	if prev.holdReason != "" {
		a.log.Warn("outputs held cut after an unclean stop", "until", prev.holdUntil.Format(time.RFC3339), "reason", prev.holdReason)
	}
	return a, nil
}

// current returns the running plant.
func (a *App) current() *plant {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pl
}

// Config returns the running configuration.
func (a *App) Config() *config.Config { return a.current().cfg }

func (a *App) buffer() *store.Store {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}

func (a *App) publisher() *publish.Publisher {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pub
}

// observe hands a lane's report to the safety core.
func (a *App) observe(o safety.Observation) {
	if a.core != nil {
		a.core.Observe(o)
	}
}

// Run starts the safety core, the outputs and the sources first, then the
// buffer and the publisher, and blocks until ctx ends or something fatal
// happens; then it shuts down in order (outputs cut first) and returns the
// first fatal error. It speaks sd_notify: READY once running, WATCHDOG while
// the safety core and every source are live, STOPPING on shutdown.
func (a *App) Run(ctx context.Context) error {
	defer a.startControl(ctx)() // control socket first: answers "starting" (control.go)
	cfg := a.current().cfg
	a.applyMemoryLimit(cfg)
	a.log.Info("hazmon starting", "version", buildinfo.Version(), "agent", cfg.Agent.ID,
		"site", cfg.Agent.Site, "buses", len(cfg.Buses), "sensors", len(cfg.Sensors), "outputs", len(cfg.Outputs))

	// 1. Safety: the core, the lanes (coils cut as soon as their bus
	// answers), the sources and their supervisor, under a context that
	// outlives ctx until the outputs are cut.
	life, stopLife := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLife()
	coreCtx, stopCore := context.WithCancel(life)
	coreDone := a.spawn("safety core", func() error { return a.core.Run(coreCtx) })
	a.mu.Lock()
	a.life = life
	a.startLanes(life, a.pl)
	a.startSources(life, a.pl)
	a.mu.Unlock()
	var aux sync.WaitGroup // supervisor, state writer, recorder, loss reports, clock watch, watchdog
	auxCtx, stopAux := context.WithCancel(life)
	aux.Add(2)
	a.spawn("bus supervisor", func() error { defer aux.Done(); a.supervise(auxCtx); return nil })
	a.spawn("state writer", func() error { defer aux.Done(); a.state.run(auxCtx); return nil })
	a.state.started(cfg, time.Now())

	// 2. The buffer (degraded without it), 3. the publisher.
	runErr := a.openUplink(cfg)
	if runErr == nil {
		a.event(contract.Event{Type: contract.EventStart, TS: time.Now().UnixMilli(), PreviousStop: a.prev.stop,
			Detail: a.prev.stopDetail})
		a.updateState()
	}
	defer a.startMetrics(ctx, cfg)() // PUBACK baseline before the publisher runs; metrics.listen
	var pubDone <-chan error
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	if runErr == nil && a.publisher() != nil {
		a.retainAlarms(a.core.ActiveAlarms(), time.Now()) // re-announced on start, empty or not
		pubDone = a.spawn("publisher", func() error { return a.publisher().Run(pubCtx) })
	}
	expCtx, stopExp := context.WithCancel(context.WithoutCancel(ctx))
	defer stopExp()
	waitExp := a.startExporters(expCtx, cfg)
	a.publishPoints(ctx)
	a.agg = a.newAggregator(cfg, time.Now())
	recCtx, stopRec := context.WithCancel(life)
	recDone := a.spawn("recorder", func() error { a.record(recCtx); return nil })
	aux.Add(3)
	a.spawn("loss reports", func() error { defer aux.Done(); a.lossLoop(auxCtx); return nil })
	a.spawn("outputs topic", func() error { defer aux.Done(); a.outputsLoop(auxCtx); return nil })
	a.spawn("clock watch", func() error { // a wall-clock step (NTP on a board without RTC) becomes a clock_step event
		defer aux.Done()
		ClockWatch{Report: a.event}.Run(auxCtx)
		return nil
	})
	if d, ok := sdnotify.WatchdogInterval(); ok {
		aux.Add(1)
		a.spawn("watchdog", func() error { defer aux.Done(); a.watchdog(auxCtx, d); return nil })
	}

	if runErr == nil {
		a.log.Info("hazmon running")
		a.ctl.setState(control.StateRunning)
		if err := sdnotify.Ready(); err != nil {
			a.log.Warn("sd_notify", "err", err)
		}
		select {
		case <-ctx.Done():
		case err := <-a.failed:
			runErr = err
		case err := <-pubDone:
			runErr = fmt.Errorf("publisher stopped: %w", err)
		}
	}
	a.log.Info("hazmon stopping")
	_ = sdnotify.Stopping()
	a.ctl.setState(control.StateStopping)
	a.reloadMu.Lock() // no reload during or after shutdown
	a.stopping = true
	a.reloadMu.Unlock()

	a.cutAll() // outputs cut first, while the buses still run
	a.stopPlant()
	stopCore()
	<-coreDone
	stopRec()
	<-recDone // what the core handed on is in the buffer's queue and the uplinks'
	stopExp()
	waitExp()
	stopAux()
	aux.Wait()
	a.parts.Wait()
	clean := runErr == nil
	a.state.stopped(a.core.ActiveAlarms(), clean)
	if st := a.buffer(); st != nil {
		a.reportLoss()
		a.drain()
		stopPub()
		if pubDone != nil {
			<-pubDone
		}
		if err := st.Close(); err != nil {
			a.log.Error("buffer close", "err", err)
		}
	}
	a.lock.release()
	a.log.Info("hazmon stopped", "clean", clean)
	return runErr
}

// openUplink opens the buffer and builds the publisher. A buffer file that
// cannot be used (read-only data_dir, disk full, I/O errors) does not fail
// Open: the store holds records in memory and the publisher sends them
// live (store.Health says why it is degraded). Only a buffer held by
// another agent stops the start; a publisher that cannot be built (a bad
// TLS file) is a fatal error: outputs are already cut and stay cut.
func (a *App) openUplink(cfg *config.Config) error {
	st, err := store.Open(filepath.Join(cfg.Agent.DataDir, BufferFile), store.Options{
		MaxBytes: cfg.Buffer.MaxBytes, MaxAge: cfg.Buffer.MaxAge.D(), CommitInterval: cfg.Buffer.CommitInterval.D(), Logger: a.log,
	})
	if err != nil {
		a.log.Error("buffer unusable: monitoring and local safety go on without the uplink", "err", err)
		a.ctl.setBufferFault(err.Error())
		if errors.Is(err, store.ErrInUse) {
			return err // another agent runs here: two must never drive the same outputs
		}
		return nil
	}
	a.mu.Lock()
	a.st = st
	a.mu.Unlock()
	// A damaged file was moved aside and salvaged, or the file cannot be
	// written (the store runs in memory): the store queues the
	// buffer_reset / buffer_fault event itself and reports it in Health.
	po, err := publish.OptionsFromConfig(cfg.MQTT, cfg.Agent, buildinfo.Version(), sensorIDs(cfg))
	if err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	po.Logger = a.log.With("component", "mqtt")
	po.Resolutions = cfg.Resolutions()
	po.FreshReadingsCanonical = true // record (recorder.go) is the only producer of telemetry records
	a.mu.Lock()
	po.ConfigHash = a.cfgHash
	a.mu.Unlock()
	pub, err := publish.New(st, po)
	if err != nil {
		return err
	}
	// The backlog of the last run is formed from the first connect on:
	// v2 messages index the registry from the start (publishPoints keeps
	// it current).
	reg, _ := registryOf(cfg)
	pub.SetTelemetryIndex(reg.Index())
	a.mu.Lock()
	a.pub = pub
	a.mu.Unlock()
	return nil
}

func sensorIDs(cfg *config.Config) []string {
	ids := make([]string, 0, len(cfg.Sensors))
	for _, s := range cfg.Sensors {
		ids = append(ids, s.ID)
	}
	return ids
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

func joinErrs(errs []error) error { return errors.Join(errs...) }
