package app

import (
	"context"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/buildinfo"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/metrics"
	"github.com/hazmon/hazmon/internal/safety"
	"github.com/hazmon/hazmon/internal/store"
)

// bufferStatsEvery is how long a scrape reuses the buffer's last Stats:
// store.Stats walks the buffer's pages, so scrapes close together (the
// TCP listener, the socket and a technician's `hazmon metrics`) walk it
// once.
const bufferStatsEvery = 2 * time.Second

// metricsState is what the metrics need beyond the App's parts: the
// reading counters the recorder feeds, the PUBACK baseline and the
// buffer Stats cache. Its own locks only: a scrape never holds one the
// pollers, the safety core or the recorder wait on.
type metricsState struct {
	// readings counts every evaluated reading (record calls Count).
	readings metrics.Readings

	mu sync.Mutex
	// ackStore and ackBase: per stream, LastSeq - Outbox of ackStore when
	// the agent opened it. A formed message leaves the outbox only when the
	// broker acknowledges it (eviction drops pending records only), so
	// that difference grows by one per PUBACK.
	ackStore *store.Store
	ackBase  map[store.Stream]int64
	// statsOf, statsAt, stats: the cached store.Stats.
	statsOf *store.Store
	statsAt time.Time
	stats   store.Stats
}

// startMetrics takes the PUBACK baseline of the buffer just opened (before
// the publisher runs) and serves the metrics on metrics.listen if set. It
// returns the function that stops the listener and waits. A listener that
// cannot be opened is logged, not fatal: the metrics stay on the control
// socket.
func (a *App) startMetrics(ctx context.Context, cfg *config.Config) (stop func()) {
	if st := a.buffer(); st != nil {
		if s, err := st.Stats(); err == nil {
			a.met.mu.Lock()
			a.met.ackStore, a.met.ackBase = st, map[store.Stream]int64{}
			for name, ss := range s.Streams {
				a.met.ackBase[name] = int64(ss.LastSeq) - int64(ss.Outbox)
			}
			a.met.mu.Unlock()
		}
	}
	if cfg.Metrics.Listen == "" {
		return func() {}
	}
	log := a.log.With("component", "metrics")
	srv, err := metrics.Listen(cfg.Metrics.Listen, (*controlBackend)(a).Metrics, log)
	if err != nil {
		a.log.Error("metrics listener not available; the metrics stay on the control socket", "err", err)
		return func() {}
	}
	a.log.Info("metrics listening", "addr", srv.Addr().String())
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(mctx); err != nil {
			a.log.Error("metrics listener stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// Metrics implements control.Backend: the agent's metrics in the
// Prometheus text format, gathered now. The safety core's part waits at
// most metrics.ScrapeCoreTimeout; without its answer the scrape reports
// hazmon_core_up 0 and the rest.
func (b *controlBackend) Metrics(ctx context.Context, w io.Writer) error {
	return metrics.Write(w, (*App)(b).metricsSnapshot(ctx, time.Now()))
}

// metricsSnapshot gathers one scrape from the same sources as Status.
func (a *App) metricsSnapshot(ctx context.Context, now time.Time) *metrics.Snapshot {
	p := a.current()
	cfg := p.cfg
	a.ctl.mu.Lock()
	state := a.ctl.state
	a.ctl.mu.Unlock()
	s := &metrics.Snapshot{Version: buildinfo.Version(), Commit: buildinfo.Commit(), State: state,
		Sensors: a.met.readings.Counts(sensorIDs(cfg)), NotStored: a.appendErrs.Load()}
	if a.opts.LogDropped != nil {
		s.LogDropped = a.opts.LogDropped()
	}
	for _, bus := range cfg.Buses {
		if bp := p.pollers[bus.Name]; bp != nil {
			s.Buses = append(s.Buses, metrics.Bus{Name: bus.Name, BusStats: bp.poller.Stats()})
		}
	}
	s.Sources = sourceMetrics(a, p)

	s.CoreLoopAge = max(0, now.Sub(a.core.LastLoop()))
	cctx, cancel := context.WithTimeout(ctx, metrics.ScrapeCoreTimeout)
	snap, err := a.core.Snapshot(cctx)
	cancel()
	s.OutboxLostReadings, s.OutboxLostUrgent = snap.LostReadings, snap.LostUrgent
	if err == nil {
		s.Core = coreMetrics(snap)
	}

	if st := a.buffer(); st != nil {
		if bs, ok := a.bufferMetrics(st, cfg, now); ok {
			s.Buffer = bs
		}
	}
	if pub := a.publisher(); pub != nil {
		l := pub.Link()
		s.MQTT = &metrics.MQTT{Connected: l.Connected, Since: l.Since, InFlight: l.InFlight}
	}
	return s
}

// sourceMetrics are the running plant's queues into the safety core.
func sourceMetrics(a *App, p *plant) []metrics.Source {
	var out []metrics.Source
	add := func(src *safety.Source) {
		if src != nil {
			out = append(out, metrics.Source{Name: src.Name(), Overruns: src.Overruns()})
		}
	}
	for _, bp := range p.pollers {
		add(bp.src)
	}
	for _, ip := range p.inputs {
		add(ip.src)
	}
	add(a.super)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func coreMetrics(snap safety.Snapshot) *metrics.Core {
	c := &metrics.Core{}
	for _, o := range snap.Outputs {
		c.Outputs = append(c.Outputs, metrics.Output{Name: o.Name, Cut: o.Cut, Confirmed: o.Confirmed,
			Known: o.Known, Energised: o.Energised, Latched: o.Latched != "", FeedAbnormal: o.FeedAbnormal,
			Cuts: uint64(max(o.Cuts, 0)), CutSeconds: o.CutS})
	}
	for _, al := range snap.Alarms {
		c.AlarmLevels = append(c.AlarmLevels, al.Level)
	}
	return c
}

// bufferMetrics is the buffer's state, from a store.Stats at most
// bufferStatsEvery old; false if the buffer cannot be read.
func (a *App) bufferMetrics(st *store.Store, cfg *config.Config, now time.Time) (*metrics.Buffer, bool) {
	m := &a.met
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.statsOf != st || now.Sub(m.statsAt) >= bufferStatsEvery || now.Before(m.statsAt) {
		s, err := st.Stats()
		if err != nil {
			return nil, false
		}
		m.statsOf, m.statsAt, m.stats = st, now, s
	}
	s := m.stats
	b := &metrics.Buffer{Bytes: s.Bytes, FileBytes: s.FileSize, LimitBytes: cfg.Buffer.MaxBytes}
	for _, name := range store.Streams {
		ss := s.Streams[name]
		bs := metrics.Stream{Name: string(name), Pending: ss.Pending, Outbox: ss.Outbox, LastSeq: ss.LastSeq, Evicted: ss.Evicted}
		if !ss.Oldest.IsZero() {
			bs.OldestAge = max(0, now.Sub(ss.Oldest))
		}
		if base, ok := m.ackBase[name]; ok && m.ackStore == st {
			bs.Acked = uint64(max(0, int64(ss.LastSeq)-int64(ss.Outbox)-base))
		}
		b.Streams = append(b.Streams, bs)
	}
	return b, true
}
