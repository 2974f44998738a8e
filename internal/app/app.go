// Package app wires hazmon's components into one agent and owns their
// goroutines: Modbus pollers and GPIO inputs (sources) → safety path (rules
// → outputs, alarms) → bbolt buffer → MQTT publisher (sink). Sinks start
// before sources; on shutdown the outputs are cut first (while the buses
// still run), then the sources stop, the buffer's queue is committed, and
// the publisher says offline and disconnects.
//
// A reload (SIGHUP, `hazmon reload`) validates the new file first: a bad
// one is rejected with its errors and the running config stays. A good one
// replaces the graph of sources and safety path; the buffer, the publisher
// and the control socket carry on (see Reload).
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

	"github.com/hazmon/hazmon/internal/buildinfo"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/publish"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/sdnotify"
	"github.com/hazmon/hazmon/internal/store"
)

// BufferFile is the name of the bbolt buffer inside agent.data_dir.
const BufferFile = "buffer.db"

// Options are the App's dependencies beyond the config.
type Options struct {
	Logger     *slog.Logger // default slog.Default()
	ConfigPath string       // file Reload re-reads
	// DrainTimeout bounds how long shutdown waits for the publisher to send
	// what is already buffered (default 2s); the rest stays in the buffer.
	DrainTimeout time.Duration
	// LogDropped returns how many log lines were dropped because the log
	// sink stalled (asynclog.Writer.Dropped), shown in Status.Log; nil: 0.
	LogDropped func() uint64
}

// App is one running agent. Create it with New, run it with Run; Run
// returns after ctx ends and everything is stopped and flushed.
type App struct {
	opts Options
	log  *slog.Logger

	store *store.Store
	pub   *publish.Publisher

	gmu      sync.Mutex // serialises reloads; guards g
	g        *graph     // current sources and safety path
	srcCtx   context.Context
	failed   chan error // a source's fatal error (first one)
	reloadMu sync.Mutex // one Reload at a time
	stopping bool       // shutdown has begun: Reload refuses (guarded by reloadMu)

	loss       lossTally     // records the buffer refused, reported as data_loss
	appendErrs atomic.Uint64 // records the buffer refused since start
	errLog     rateLimit

	ctl controlState // control socket (control.go)
}

// New opens the buffer (failing fast with store.ErrInUse if another agent
// holds it) and builds the publisher, the safety path and the sources. It
// starts nothing but the GPIO outputs, which are driven cut at once.
func New(cfg *config.Config, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 2 * time.Second
	}
	a := &App{opts: opts, log: opts.Logger, failed: make(chan error, 1)}
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

	po, err := publish.OptionsFromConfig(cfg.MQTT, cfg.Agent, buildinfo.Version(), sensorIDs(cfg))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	po.Logger = a.log.With("component", "mqtt")
	if a.pub, err = publish.New(st, po); err != nil {
		st.Close()
		return nil, err
	}
	if a.g, err = a.build(cfg, nil); err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

func sensorIDs(cfg *config.Config) []string {
	ids := make([]string, 0, len(cfg.Sensors))
	for _, s := range cfg.Sensors {
		ids = append(ids, s.ID)
	}
	return ids
}

// current returns the running graph (config, safety path, pollers).
func (a *App) current() *graph {
	a.gmu.Lock()
	defer a.gmu.Unlock()
	return a.g
}

// Config returns the running configuration.
func (a *App) Config() *config.Config { return a.current().cfg }

// Run starts the publisher, the safety path and the sources and blocks
// until ctx ends, then shuts down in order and closes the buffer. It
// returns the first fatal error. It speaks sd_notify: READY once running,
// WATCHDOG while the safety loop ticks, STOPPING on shutdown.
func (a *App) Run(ctx context.Context) error {
	defer a.store.Close()
	defer a.startControl(ctx)() // control socket first: answers "starting" (control.go)
	cfg := a.current().cfg
	a.log.Info("hazmon starting", "version", buildinfo.Version(), "agent", cfg.Agent.ID,
		"site", cfg.Agent.Site, "buses", len(cfg.Buses), "sensors", len(cfg.Sensors),
		"outputs", len(cfg.Outputs), "buffer", a.store.Path())

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
	a.gmu.Lock()
	a.srcCtx = srcCtx
	a.g.start(srcCtx, a.failed)
	a.gmu.Unlock()

	var aux sync.WaitGroup // clock watch, loss reports, systemd watchdog
	aux.Add(1)
	go func() { // a wall-clock step (NTP on a board without RTC) becomes a clock_step event
		defer aux.Done()
		ClockWatch{Report: a.event}.Run(srcCtx)
	}()
	aux.Add(1)
	go func() { defer aux.Done(); a.lossLoop(srcCtx) }()
	if d, ok := sdnotify.WatchdogInterval(); ok {
		aux.Add(1)
		go func() { defer aux.Done(); a.watchdog(srcCtx, d) }()
	}
	a.log.Info("hazmon running")
	a.ctl.setState(control.StateRunning)
	if err := sdnotify.Ready(); err != nil {
		a.log.Warn("sd_notify", "err", err)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-a.failed:
		runErr = err
	case err := <-pubDone:
		runErr = fmt.Errorf("publisher stopped: %w", err)
		pubDone <- nil
	}
	a.log.Info("hazmon stopping")
	_ = sdnotify.Stopping()
	a.ctl.setState(control.StateStopping)
	a.reloadMu.Lock() // no reload during or after shutdown
	a.stopping = true
	a.reloadMu.Unlock()
	a.current().stop(a.log) // outputs cut first, while the buses still run
	stopSrc()
	aux.Wait()
	a.reportLoss()
	a.drain()
	stopPub()
	<-pubDone
	a.log.Info("hazmon stopped")
	return runErr
}

// watchdog pings systemd's watchdog at half its interval while the safety
// loop is alive (it ticks every TickEvery); a hung safety loop stops the
// pings and systemd restarts the agent.
func (a *App) watchdog(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if time.Since(a.current().safety.lastTick()) < interval/2 {
				if err := sdnotify.Watchdog(); err != nil && a.errLog.allow() {
					a.log.Warn("sd_notify watchdog", "err", err)
				}
			}
		}
	}
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

// record is called by g's sources with every reading: the safety path
// sets its status, then it is buffered for publishing and becomes the
// sensor's current value. It never blocks on the disk or the network.
func (a *App) record(g *graph, r reading.Reading) {
	r.Status = g.safety.apply(r)
	a.ctl.observe(r) // last value for the control socket (control.go)
	c := contract.FromReading(r)
	a.pub.UpdateCurrent(c)
	a.buffer(store.Telemetry, r.Time, c)
}

// buffer queues a record of stream without waiting for the disk. A record
// the buffer refuses (queue full, write error) is counted and reported in
// a data_loss event (loss.go), never dropped silently.
func (a *App) buffer(stream store.Stream, ts time.Time, v any) {
	data, err := contract.Marshal(v)
	if err == nil {
		err = a.store.AppendAsync(stream, ts, data, func(err error) {
			if err != nil {
				a.refused(ts, err)
			}
		})
	}
	if err != nil {
		a.refused(ts, err)
	}
}

func (a *App) refused(ts time.Time, err error) {
	a.loss.add(ts, err)
	a.appendErrs.Add(1)
	if a.errLog.allow() {
		a.log.Error("buffer: record not stored", "err", err)
	}
}

// queueAlarm queues an alarm for the alarm stream, which is published
// before any telemetry backlog.
func (a *App) queueAlarm(al contract.Alarm) {
	a.log.Warn("alarm", "sensor", al.Sensor, "level", al.Level, "state", al.State, "alarm_id", al.AlarmID)
	a.buffer(store.Alarm, time.UnixMilli(al.TS), al)
}

// event queues an agent event (buffer reset, data loss, ...) for the event stream.
func (a *App) event(e contract.Event) {
	a.buffer(store.Event, time.UnixMilli(e.TS), e)
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

// errSourceFailed wraps a source's fatal error.
var errSourceFailed = errors.New("source failed")
