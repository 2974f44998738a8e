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

	"github.com/hazmon/hazmon/internal/buildinfo"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/publish"
	"github.com/hazmon/hazmon/internal/reading"
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

	appendErrs atomic.Uint64 // readings the buffer refused (busy or write error)
	errLog     rateLimit
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

	for _, b := range cfg.Buses {
		var sensors []config.Sensor
		for _, s := range cfg.Sensors {
			if s.Bus == b.Name {
				sensors = append(sensors, s)
			}
		}
		p, err := modbus.NewPoller(b, sensors, a.record, a.log)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("bus %s: %w", b.Name, err)
		}
		a.pollers = append(a.pollers, p)
	}
	return a, nil
}

// Run starts the publisher and the pollers and blocks until ctx ends, then
// shuts down in order and closes the buffer. It returns the first fatal error.
func (a *App) Run(ctx context.Context) error {
	defer a.store.Close()
	a.log.Info("hazmon starting", "version", buildinfo.Version(), "agent", a.cfg.Agent.ID,
		"site", a.cfg.Agent.Site, "buses", len(a.cfg.Buses), "sensors", len(a.cfg.Sensors),
		"buffer", a.store.Path())

	// Sink first: the publisher runs until the sources are stopped and the
	// backlog had its chance to drain.
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	pubDone := make(chan error, 1)
	go func() { pubDone <- a.pub.Run(pubCtx) }()

	srcCtx, stopSrc := context.WithCancel(ctx)
	defer stopSrc()
	var wg sync.WaitGroup
	errs := make(chan error, len(a.pollers))
	for _, p := range a.pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(srcCtx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
				stopSrc()
			}
		}()
	}
	a.log.Info("hazmon running")

	var runErr error
	select {
	case <-srcCtx.Done():
	case err := <-pubDone:
		runErr = fmt.Errorf("publisher stopped: %w", err)
		pubDone <- nil
	}
	a.log.Info("hazmon stopping")
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
