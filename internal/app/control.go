package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/buildinfo"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

// controlState is what the control socket needs beyond the App's parts:
// the agent state, the start time and each sensor's last reading.
type controlState struct {
	mu          sync.Mutex
	state       string
	started     time.Time
	last        map[string]reading.Reading
	bufferFault string // why the buffer is unusable, "" if it works
}

func (c *controlState) setBufferFault(why string) {
	c.mu.Lock()
	c.bufferFault = why
	c.mu.Unlock()
}

func (c *controlState) setState(s string) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
}

// observe keeps the readings of items as their sensors' last readings,
// under one lock for the batch. Called from record.
func (c *controlState) observe(items []safety.Item) {
	c.mu.Lock()
	if c.last == nil {
		c.last = map[string]reading.Reading{}
	}
	for i := range items {
		if items[i].Kind == safety.ItemReading {
			c.last[items[i].Reading.Sensor] = items[i].Reading
		}
	}
	c.mu.Unlock()
}

// startControl brings the control socket up (answering "starting") and
// returns the function that stops it and waits. A socket that cannot be
// created is logged, not fatal: monitoring goes on without it.
func (a *App) startControl(ctx context.Context) (stop func()) {
	a.ctl.mu.Lock()
	a.ctl.state = control.StateStarting
	a.ctl.started = time.Now()
	a.ctl.mu.Unlock()
	path := a.current().cfg.Control.Socket
	if path == "" {
		path = control.DefaultSocket
	}
	srv, err := control.Listen(path, (*controlBackend)(a), a.log.With("component", "control"))
	if err != nil {
		a.log.Error("control socket not available; the CLI cannot reach this agent", "err", err)
		return func() {}
	}
	a.log.Info("control socket listening", "path", srv.Path())
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(cctx); err != nil {
			a.log.Error("control socket stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// controlBackend is the App seen as a control.Backend.
type controlBackend App

var _ control.Backend = (*controlBackend)(nil)

// Status implements control.Backend.
func (b *controlBackend) Status(ctx context.Context) (control.Status, error) {
	a := (*App)(b)
	p := a.current()
	cfg := p.cfg
	now := time.Now()
	a.ctl.mu.Lock()
	st := control.Status{
		State: a.ctl.state, Version: buildinfo.Version(), Agent: cfg.Agent.ID, Site: cfg.Agent.Site,
		ConfigPath: a.opts.ConfigPath, NowTS: now.UnixMilli(), StartedTS: a.ctl.started.UnixMilli(),
		UptimeS: now.Sub(a.ctl.started).Seconds(),
	}
	if a.opts.LogDropped != nil {
		st.Log.Dropped = a.opts.LogDropped()
	}
	for _, s := range cfg.Sensors {
		ss := control.SensorStatus{ID: s.ID, Type: s.Type, Bus: s.Bus, Unit: s.Unit, AgeS: -1}
		if r, ok := a.ctl.last[s.ID]; ok {
			ss.Status, ss.Error, ss.TS = string(r.Status), r.Err, r.Time.UnixMilli()
			ss.AgeS = now.Sub(r.Time).Seconds()
			if r.Valid() {
				v := r.Value
				ss.Value = &v
			}
		}
		st.Sensors = append(st.Sensors, ss)
	}
	bufferFault := a.ctl.bufferFault
	a.ctl.mu.Unlock()

	for _, bus := range cfg.Buses {
		bp := p.pollers[bus.Name]
		if bp == nil {
			continue
		}
		bs := bp.poller.Stats()
		addr := bus.Address
		if bus.Protocol == "rtu" {
			addr = bus.Device
		}
		st.Buses = append(st.Buses, control.BusStatus{
			Name: bus.Name, Protocol: bus.Protocol, Address: addr, Connected: bs.Connected,
			Requests: bs.Requests, Errors: bs.Errors, Timeouts: bs.Timeouts, Busy: bs.Busy, Missed: bs.Missed,
			LastError: bs.LastError, RTTMs: float64(bs.LastRTT.Microseconds()) / 1000,
		})
	}
	if pub := a.publisher(); pub != nil {
		l := pub.Link()
		st.MQTT = control.MQTTStatus{Connected: l.Connected, Broker: l.Broker, LastError: l.LastError, InFlight: l.InFlight}
		if !l.Since.IsZero() {
			st.MQTT.SinceTS = l.Since.UnixMilli()
		}
	} else {
		st.MQTT = control.MQTTStatus{LastError: "no uplink: the buffer is unusable"}
	}
	if bs, err := b.BufferStats(ctx); err == nil {
		st.Buffer = bs
	} else {
		st.Buffer = control.BufferStats{Path: filepath.Join(cfg.Agent.DataDir, BufferFile), OldestAgeS: -1, LastError: err.Error()}
	}
	if bufferFault != "" {
		st.Buffer.LastError = bufferFault
	}
	snap, err := a.core.Snapshot(ctx)
	if err != nil {
		return st, fmt.Errorf("safety core not answering: %w", err)
	}
	for _, o := range snap.Outputs {
		os := control.OutputStatus{Name: o.Name, State: "on", Feed: o.Feed}
		if o.Cut {
			os.State = "cut"
		}
		switch {
		case o.Latched != "":
			os.Detail = "latched cut: " + o.Latched + " (hazmon output restore " + o.Name + ")"
		case o.FeedAbnormal:
			os.Detail = "feed abnormal: " + o.FeedReason
		case o.LastError != "":
			os.Detail = "not confirmed: " + o.LastError
		case !o.Confirmed:
			os.Detail = "switching"
		case o.Cut && o.Why != "rules" && o.Why != "":
			os.Detail = o.Why
		}
		st.Outputs = append(st.Outputs, os)
	}
	units := map[string]string{}
	for _, s := range cfg.Sensors {
		units[s.ID] = s.Unit
	}
	for _, al := range snap.Alarms {
		aa := control.ActiveAlarm{Sensor: al.Sensor, Level: al.Level, Unit: units[al.Sensor], TS: al.Time.UnixMilli()}
		if al.Valid {
			v := al.Value
			aa.Value = &v
		}
		st.Alarms = append(st.Alarms, aa)
	}
	sort.Slice(st.Alarms, func(i, j int) bool {
		x, y := st.Alarms[i], st.Alarms[j]
		return x.Sensor < y.Sensor || (x.Sensor == y.Sensor && x.Level < y.Level)
	})
	return st, nil
}

// Probe implements control.Backend: the read is queued on the bus's poller.
func (b *controlBackend) Probe(ctx context.Context, req control.ProbeRequest) (control.ProbeResult, error) {
	a := (*App)(b)
	if err := control.CheckProbe(req); err != nil {
		return control.ProbeResult{}, err
	}
	g := a.current()
	if bp, ok := g.pollers[req.Bus]; ok {
		start := time.Now()
		data, err := bp.poller.Read(ctx, byte(req.Slave), req.Table, uint16(req.Address), uint16(req.Count))
		if err != nil {
			return control.ProbeResult{}, err // the poller's error names bus, slave, table and address
		}
		res := control.ProbeResult{Via: "agent", Bus: req.Bus, Slave: req.Slave, Table: req.Table, Address: req.Address,
			RTTMs: float64(time.Since(start).Microseconds()) / 1000}
		if err := control.FillProbeResult(&res, data, req.Count); err != nil {
			return control.ProbeResult{}, fmt.Errorf("bus %s: %w", req.Bus, err)
		}
		return res, nil
	}
	return control.ProbeResult{}, fmt.Errorf("%w: bus %q is not in the agent's config (buses: %s)", control.ErrNotFound, req.Bus, busNames(g.cfg))
}

func busNames(c *config.Config) string {
	s := ""
	for i, b := range c.Buses {
		if i > 0 {
			s += ", "
		}
		s += b.Name
	}
	return s
}

// Reload implements control.Backend: App.Reload of the config file. A
// refusal is a control.RefusedError listing each problem once (file:line
// config errors, or what needs a restart). Changed says whether a new
// graph was applied (false for an unchanged file).
func (b *controlBackend) Reload(ctx context.Context) (control.ReloadResult, error) {
	a := (*App)(b)
	changed, warnings, err := a.Reload(ctx)
	if err != nil {
		return control.ReloadResult{}, &control.RefusedError{What: "reload refused (the running config stays)", Problems: reloadProblems(err)}
	}
	cfg := a.current().cfg
	return control.ReloadResult{ConfigPath: a.opts.ConfigPath, Changed: changed, Warnings: warnings,
		Buses: len(cfg.Buses), Sensors: len(cfg.Sensors), Outputs: len(cfg.Outputs)}, nil
}

// reloadProblems lists a refused reload's reasons, one line each, without
// the "the running config stays" wording that RefusedError already says.
func reloadProblems(err error) []string {
	var ce *config.Error
	if errors.As(err, &ce) {
		ps := make([]string, len(ce.Problems))
		for i, p := range ce.Problems {
			ps[i] = p.Error()
		}
		return ps
	}
	msg := err.Error()
	for _, pre := range []string{"reload rejected, the running config stays: ", "reload rejected: ", "the running config stays: "} {
		msg = strings.TrimPrefix(msg, pre)
	}
	return []string{strings.TrimSuffix(msg, " (the running config stays)")}
}

// --- end of reload over the control socket ---

// BufferStats implements control.Backend.
func (b *controlBackend) BufferStats(ctx context.Context) (control.BufferStats, error) {
	a := (*App)(b)
	s := a.buffer()
	if s == nil {
		return control.BufferStats{}, errNoBuffer
	}
	st, err := s.Stats()
	if err != nil {
		return control.BufferStats{}, err
	}
	bs := control.BufferStatsFrom(s.Path(), st, time.Now())
	if ok, why := s.Health(); !ok {
		bs.Degraded = why // file unusable (records in memory) or the disk stalls
	}
	bs.NotStored = a.appendErrs.Load()
	bs.LastError = a.loss.lastError()
	return bs, nil
}

// BufferExport implements control.Backend: the agent holds the file lock,
// so the export reads through its open store.
func (b *controlBackend) BufferExport(ctx context.Context, since time.Time, format string, w io.Writer) (int, error) {
	s := (*App)(b).buffer()
	if s == nil {
		return 0, fmt.Errorf("%w: %v", control.ErrUnavailable, errNoBuffer)
	}
	return control.Export(ctx, s, since, format, w)
}

// BufferDead implements control.Backend: the dead letters, read through
// the agent's open store.
func (b *controlBackend) BufferDead(ctx context.Context, format string, w io.Writer) (int, error) {
	s := (*App)(b).buffer()
	if s == nil {
		return 0, fmt.Errorf("%w: %v", control.ErrUnavailable, errNoBuffer)
	}
	return control.ExportDead(ctx, s, format, w)
}
