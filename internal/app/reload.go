package app

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/safety"
	"github.com/hazmon/hazmon/internal/sdnotify"
)

// ErrRestartNeeded is returned by Reload when the new file changes what
// only a restart can apply (agent identity, data_dir, buffer, mqtt,
// control socket); the running config stays.
var ErrRestartNeeded = errors.New("restart needed")

// Reload re-reads Options.ConfigPath. A file that does not load or
// validate is rejected with every problem (file:line: key: message) and
// the running config stays. So does a file that changes the agent's
// identity, buffer, MQTT link, control socket or log (ErrRestartNeeded;
// agent.memory_limit is the exception: a reload applies it). An
// unchanged file is a no-op: nothing restarts, nothing buffered moves.
//
// Otherwise the new config takes over without a blind window:
//
//  1. its hardware is built, taking over as they run the pollers, lanes
//     and inputs whose config is unchanged (a rule edit keeps its bus);
//  2. the safety core swaps rules at once, on its own goroutine: the new
//     rules inherit the old ones' state (an edited raised rule stays
//     raised), active alarms keep their ids, and every output cut when the
//     reload begins stays cut while what cut it under the old rules still
//     stands (a moved, renamed or removed rule or sensor never restores
//     power: `hazmon output restore` lifts the hold once safe);
//  3. new pollers start beside the old ones, outputs the new file moves or
//     removes are cut and confirmed, their new lanes start, and the old
//     pollers stop.
//
// Readings are evaluated throughout: a changed TCP bus is read by its old
// and its new poller for a moment; an RTU port (and a GPIO line) serves one
// at a time, so its sensors pause from the old poller's stop to the new
// one's first reading (one transaction plus the reopen backoff, ~0.1 s). A reload is refused once
// shutdown began and while an output test runs. The buffer and the
// publisher are not touched: nothing buffered is lost.
//
// changed is false when the file was unchanged. It returns the new file's
// warnings.
func (a *App) Reload(ctx context.Context) (changed bool, warnings []string, err error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.opts.ConfigPath == "" {
		return false, nil, errors.New("reload: the agent was not started from a config file")
	}
	_ = sdnotify.Reloading()
	defer func() { _ = sdnotify.Ready() }()

	l, err := config.Load(a.opts.ConfigPath)
	if err != nil {
		a.log.Error("reload rejected: the running config stays", "file", a.opts.ConfigPath, "err", err)
		return false, nil, fmt.Errorf("the running config stays: %w", err)
	}
	for _, w := range l.Warnings {
		warnings = append(warnings, w.Error())
		a.log.Warn("config", "warning", w.Error())
	}
	old := a.current()
	next := l.Config
	if what := restartOnly(old.cfg, next); what != "" {
		a.log.Error("reload rejected: the running config stays", "file", a.opts.ConfigPath, "changed", what)
		return false, warnings, fmt.Errorf("%s changed: %w (the running config stays)", what, ErrRestartNeeded)
	}
	if reflect.DeepEqual(old.cfg, next) {
		a.log.Info("reload: config unchanged", "file", a.opts.ConfigPath)
		return false, warnings, nil
	}
	if a.stopping {
		return false, warnings, errors.New("the agent is stopping")
	}
	np, err := a.buildPlant(next, old, a.core)
	if err != nil {
		a.log.Error("reload rejected: the running config stays", "file", a.opts.ConfigPath, "err", err)
		return false, warnings, fmt.Errorf("the running config stays: %w", err)
	}
	if err := a.core.Reload(ctx, next.SafetySpec(), np.laneMap()); err != nil {
		a.discard(np, old)
		if errors.Is(err, safety.ErrTesting) {
			err = errors.New("an output test is running: reload after it ends")
		}
		a.log.Error("reload rejected: the running config stays", "file", a.opts.ConfigPath, "err", err)
		return false, warnings, fmt.Errorf("the running config stays: %w", err)
	}
	a.log.Info("reload: new rules in force; handing over the hardware",
		"file", a.opts.ConfigPath, "buses", len(next.Buses), "sensors", len(next.Sensors), "outputs", len(next.Outputs))
	// The hand-over: old inputs whose line a new one takes stop first; new
	// pollers start beside the old ones (the sensors of a changed bus are
	// read throughout, over TCP; an RTU port opens once the old poller lets
	// it go); outputs the new file moves or removes are cut and confirmed,
	// then their new lanes start; then the old pollers stop.
	a.retireInputs(old, np)
	a.mu.Lock()
	life := a.life
	a.mu.Unlock()
	if life != nil {
		a.startSources(life, np)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.CutTimeout)
	if err := a.retireLanes(cctx, old, np); err != nil {
		a.log.Error("reload: outputs the new file moves or removes were not all confirmed cut", "err", err)
	}
	cancel()
	if life != nil {
		a.startLanes(life, np)
	}
	a.retirePollers(old, np)
	a.mu.Lock()
	a.pl = np
	a.plantNow.Store(np)
	a.mu.Unlock()
	select {
	case a.superWake <- struct{}{}:
	default:
	}
	after := configHash(a.opts.ConfigPath, next)
	a.mu.Lock()
	before := a.cfgHash
	a.cfgHash = after
	a.mu.Unlock()
	if pub := a.publisher(); pub != nil {
		pub.SetResolutions(next.Resolutions())
		pub.SetConfig(after, sensorIDs(next))
	}
	a.event(contract.Event{Type: contract.EventReload, TS: time.Now().UnixMilli(), ConfigHashBefore: before, ConfigHashAfter: after})
	a.publishPoints(ctx)
	a.applyMemoryLimit(next)
	a.state.configured(next)
	a.log.Info("reload applied", "file", a.opts.ConfigPath)
	return true, warnings, nil
}

// restartOnly names the first section that differs between a and b and
// that only a restart can apply, or "". Sections are compared by value
// (reflect.DeepEqual), not with ==: a pointer field (buffer.commit_interval,
// mqtt.current_deadband) points into each parsed file, so == would find two
// loads of the same file different.
func restartOnly(a, b *config.Config) string {
	aa, ba := a.Agent, b.Agent
	aa.MemoryLimit, ba.MemoryLimit = 0, 0 // a reload applies it
	for _, s := range []struct {
		name string
		a, b any
	}{
		{"agent", aa, ba},
		{"mqtt", a.MQTT, b.MQTT},
		{"buffer", a.Buffer, b.Buffer},
		{"control", a.Control, b.Control},
		{"log", a.Log, b.Log},
		{"stats", a.Stats, b.Stats},
		{"uplinks", a.Uplinks, b.Uplinks},
		{"metrics", a.Metrics, b.Metrics},
	} {
		if !reflect.DeepEqual(s.a, s.b) {
			return s.name
		}
	}
	return ""
}
