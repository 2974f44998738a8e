package app

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/buildinfo"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/reading"
)

// ControlHooks connect the control socket to agent parts wired in New. A
// nil hook makes its function answer control.ErrUnavailable ("not
// available"), so the socket works before every part is in.
type ControlHooks struct {
	// Outputs returns every configured output's state (actuate.Manager.State).
	Outputs func() []control.OutputStatus
	// OutputTest pulses an output for d and reports the feed response.
	OutputTest func(ctx context.Context, name string, d time.Duration) (control.OutputTestResult, error)
	// Calibrate flags a sensor as under calibration until the given time
	// (zero: end now), e.g. rules.Engine.SetCalibrating run on the engine's
	// goroutine. known is false for a sensor without rules.
	Calibrate func(sensor string, until time.Time) (known bool, err error)
	// Reload re-reads and applies the config file (App.Reload).
	Reload func(ctx context.Context) (control.ReloadResult, error)
}

// controlState is what the control socket needs beyond the App's parts:
// the agent state, the start time and each sensor's last reading.
type controlState struct {
	mu      sync.Mutex
	state   string
	started time.Time
	last    map[string]reading.Reading
	hooks   ControlHooks
}

func (c *controlState) setState(s string) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
}

// observe keeps r as its sensor's last reading. Called from record.
func (c *controlState) observe(r reading.Reading) {
	c.mu.Lock()
	if c.last == nil {
		c.last = map[string]reading.Reading{}
	}
	c.last[r.Sensor] = r
	c.mu.Unlock()
}

// SetControlHooks installs the hooks; call it before Run.
func (a *App) SetControlHooks(h ControlHooks) {
	a.ctl.mu.Lock()
	a.ctl.hooks = h
	a.ctl.mu.Unlock()
}

func (a *App) hooks() ControlHooks {
	a.ctl.mu.Lock()
	defer a.ctl.mu.Unlock()
	return a.ctl.hooks
}

// startControl brings the control socket up (answering "starting") and
// returns the function that stops it and waits. A socket that cannot be
// created is logged, not fatal: monitoring goes on without it.
func (a *App) startControl(ctx context.Context) (stop func()) {
	a.ctl.mu.Lock()
	a.ctl.state = control.StateStarting
	a.ctl.started = time.Now()
	a.ctl.mu.Unlock()
	path := a.cfg.Control.Socket
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

// alarmStatuses are the reading statuses that count as an active alarm.
var alarmStatuses = map[reading.Status]bool{
	reading.StatusAlarm: true, reading.StatusAlarm2: true, reading.StatusCutoff: true,
	reading.StatusBlue: true, reading.StatusYellow: true, reading.StatusOrange: true, reading.StatusRed: true,
}

// Status implements control.Backend.
func (b *controlBackend) Status(ctx context.Context) (control.Status, error) {
	a := (*App)(b)
	now := time.Now()
	a.ctl.mu.Lock()
	st := control.Status{
		State: a.ctl.state, Version: buildinfo.Version(), Agent: a.cfg.Agent.ID, Site: a.cfg.Agent.Site,
		ConfigPath: a.opts.ConfigPath, NowTS: now.UnixMilli(), StartedTS: a.ctl.started.UnixMilli(),
		UptimeS: now.Sub(a.ctl.started).Seconds(),
	}
	for _, s := range a.cfg.Sensors {
		ss := control.SensorStatus{ID: s.ID, Type: s.Type, Bus: s.Bus, Unit: s.Unit, AgeS: -1}
		if r, ok := a.ctl.last[s.ID]; ok {
			ss.Status, ss.Error, ss.TS = string(r.Status), r.Err, r.Time.UnixMilli()
			ss.AgeS = now.Sub(r.Time).Seconds()
			if r.Valid() {
				v := r.Value
				ss.Value = &v
			}
			if alarmStatuses[r.Status] {
				st.Alarms = append(st.Alarms, control.ActiveAlarm{Sensor: s.ID, Level: ss.Status, Value: ss.Value, Unit: s.Unit, TS: ss.TS})
			}
		}
		st.Sensors = append(st.Sensors, ss)
	}
	hooks := a.ctl.hooks
	a.ctl.mu.Unlock()

	for i, p := range a.pollers {
		bus := a.cfg.Buses[i] // pollers are built in config order
		bs := p.Stats()
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
	l := a.pub.Link()
	st.MQTT = control.MQTTStatus{Connected: l.Connected, Broker: l.Broker, LastError: l.LastError, InFlight: l.InFlight}
	if !l.Since.IsZero() {
		st.MQTT.SinceTS = l.Since.UnixMilli()
	}
	if bs, err := b.BufferStats(ctx); err == nil {
		st.Buffer = bs
	} else {
		st.Buffer = control.BufferStats{Path: a.store.Path(), OldestAgeS: -1}
	}
	if hooks.Outputs != nil {
		st.Outputs = hooks.Outputs()
	} else {
		for _, o := range a.cfg.Outputs {
			st.Outputs = append(st.Outputs, control.OutputStatus{Name: o.Name, State: "unknown", Feed: o.Feed,
				Detail: "outputs manager not wired"})
		}
	}
	sort.SliceStable(st.Alarms, func(i, j int) bool { return st.Alarms[i].Sensor < st.Alarms[j].Sensor })
	return st, nil
}

// Probe implements control.Backend: the read is queued on the bus's poller.
func (b *controlBackend) Probe(ctx context.Context, req control.ProbeRequest) (control.ProbeResult, error) {
	a := (*App)(b)
	if err := control.CheckProbe(req); err != nil {
		return control.ProbeResult{}, err
	}
	for i, p := range a.pollers {
		if a.cfg.Buses[i].Name != req.Bus {
			continue
		}
		start := time.Now()
		data, err := p.Read(ctx, byte(req.Slave), req.Table, uint16(req.Address), uint16(req.Count))
		if err != nil {
			return control.ProbeResult{}, fmt.Errorf("bus %s: read slave %d %s %d+%d: %w", req.Bus, req.Slave, req.Table, req.Address, req.Count, err)
		}
		res := control.ProbeResult{Via: "agent", Bus: req.Bus, Slave: req.Slave, Table: req.Table, Address: req.Address,
			RTTMs: float64(time.Since(start).Microseconds()) / 1000}
		if err := control.FillProbeResult(&res, data, req.Count); err != nil {
			return control.ProbeResult{}, fmt.Errorf("bus %s: %w", req.Bus, err)
		}
		return res, nil
	}
	return control.ProbeResult{}, fmt.Errorf("%w: bus %q is not in the agent's config (buses: %s)", control.ErrNotFound, req.Bus, busNames(a.cfg))
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

// OutputTest implements control.Backend through ControlHooks.OutputTest.
func (b *controlBackend) OutputTest(ctx context.Context, name string, d time.Duration) (control.OutputTestResult, error) {
	a := (*App)(b)
	known := false
	for _, o := range a.cfg.Outputs {
		known = known || o.Name == name
	}
	if !known {
		return control.OutputTestResult{}, fmt.Errorf("%w: output %q is not configured", control.ErrNotFound, name)
	}
	if d <= 0 || d > 10*time.Minute {
		return control.OutputTestResult{}, fmt.Errorf("%w: test duration %s (want 0 < d <= 10m)", control.ErrInvalid, d)
	}
	h := a.hooks()
	if h.OutputTest == nil {
		return control.OutputTestResult{}, fmt.Errorf("output test: %w in this agent build (outputs manager not wired)", control.ErrUnavailable)
	}
	a.log.Warn("output test started from the control socket", "output", name, "for", d)
	return h.OutputTest(ctx, name, d)
}

// Calibrate implements control.Backend through ControlHooks.Calibrate.
func (b *controlBackend) Calibrate(ctx context.Context, sensor string, d time.Duration) (control.CalibrateResult, error) {
	a := (*App)(b)
	known := false
	for _, s := range a.cfg.Sensors {
		known = known || s.ID == sensor
	}
	if !known {
		return control.CalibrateResult{}, fmt.Errorf("%w: sensor %q is not configured", control.ErrNotFound, sensor)
	}
	if d > 24*time.Hour {
		return control.CalibrateResult{}, fmt.Errorf("%w: calibration of %s (at most 24h)", control.ErrInvalid, d)
	}
	h := a.hooks()
	if h.Calibrate == nil {
		return control.CalibrateResult{}, fmt.Errorf("calibrate: %w in this agent build (rules engine not wired)", control.ErrUnavailable)
	}
	var until time.Time
	if d > 0 {
		until = time.Now().Add(d)
	}
	ok, err := h.Calibrate(sensor, until)
	if err != nil {
		return control.CalibrateResult{}, fmt.Errorf("calibrate %s: %w", sensor, err)
	}
	if !ok {
		return control.CalibrateResult{}, fmt.Errorf("%w: sensor %s has no safety rules to calibrate", control.ErrNotFound, sensor)
	}
	a.log.Info("calibration set from the control socket", "sensor", sensor, "until", until)
	res := control.CalibrateResult{Sensor: sensor}
	if !until.IsZero() {
		res.UntilTS = until.UnixMilli()
	}
	return res, nil
}

// Reload implements control.Backend through ControlHooks.Reload.
func (b *controlBackend) Reload(ctx context.Context) (control.ReloadResult, error) {
	h := (*App)(b).hooks()
	if h.Reload == nil {
		return control.ReloadResult{}, fmt.Errorf("reload: %w in this agent build (restart the service instead)", control.ErrUnavailable)
	}
	return h.Reload(ctx)
}

// BufferStats implements control.Backend.
func (b *controlBackend) BufferStats(ctx context.Context) (control.BufferStats, error) {
	a := (*App)(b)
	st, err := a.store.Stats()
	if err != nil {
		return control.BufferStats{}, err
	}
	return control.BufferStatsFrom(a.store.Path(), st, time.Now()), nil
}

// BufferExport implements control.Backend: the agent holds the file lock,
// so the export reads through its open store.
func (b *controlBackend) BufferExport(ctx context.Context, since time.Time, format string, w io.Writer) (int, error) {
	return control.Export(ctx, (*App)(b).store, since, format, w)
}
