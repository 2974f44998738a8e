package app

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/sdnotify"
)

// ErrRestartNeeded is returned by Reload when the new file changes what
// only a restart can apply (agent identity, data_dir, buffer, mqtt,
// control socket); the running config stays.
var ErrRestartNeeded = errors.New("restart needed")

// Reload re-reads Options.ConfigPath. A file that does not load or
// validate is rejected with every problem (file:line: key: message) and
// the running config stays. So does a file that changes the agent's
// identity, buffer, MQTT link or control socket (ErrRestartNeeded). An
// unchanged file is a no-op: nothing restarts, nothing buffered moves.
//
// Otherwise the graph of sources and safety path is rebuilt from the new
// file: the new graph is built first (a build error keeps the old one),
// then the old one stops — its outputs are cut, its pollers stop — and the
// new one starts. Outputs therefore pass through the safe state (cut) and
// are restored as soon as every controlling sensor has read validly under
// the new rules, typically within one poll interval. The buffer and the
// publisher are not touched: nothing buffered is lost.
//
// It returns the new file's warnings.
func (a *App) Reload(ctx context.Context) (warnings []string, err error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.opts.ConfigPath == "" {
		return nil, errors.New("reload: the agent was not started from a config file")
	}
	_ = sdnotify.Reloading()
	defer func() { _ = sdnotify.Ready() }()

	l, err := config.Load(a.opts.ConfigPath)
	if err != nil {
		a.log.Error("reload rejected: the running config stays", "file", a.opts.ConfigPath, "err", err)
		return nil, fmt.Errorf("reload rejected, the running config stays: %w", err)
	}
	for _, w := range l.Warnings {
		warnings = append(warnings, w.Error())
		a.log.Warn("config", "warning", w.Error())
	}
	old := a.current()
	next := l.Config
	if what := restartOnly(old.cfg, next); what != "" {
		a.log.Error("reload rejected: the running config stays", "file", a.opts.ConfigPath, "changed", what)
		return warnings, fmt.Errorf("reload rejected: %s changed: %w (the running config stays)", what, ErrRestartNeeded)
	}
	if reflect.DeepEqual(old.cfg, next) {
		a.log.Info("reload: config unchanged", "file", a.opts.ConfigPath)
		return warnings, nil
	}
	g, err := a.build(next)
	if err != nil {
		a.log.Error("reload rejected: the running config stays", "file", a.opts.ConfigPath, "err", err)
		return warnings, fmt.Errorf("reload rejected, the running config stays: %w", err)
	}
	a.log.Warn("reload: replacing sources and safety path; outputs pass through the safe state",
		"file", a.opts.ConfigPath, "buses", len(next.Buses), "sensors", len(next.Sensors), "outputs", len(next.Outputs))
	old.stop(a.log)
	a.gmu.Lock()
	a.g = g
	if a.srcCtx != nil {
		g.start(a.srcCtx, a.failed)
	}
	a.gmu.Unlock()
	a.log.Info("reload applied", "file", a.opts.ConfigPath)
	return warnings, nil
}

// restartOnly names the first section that differs between a and b and
// that only a restart can apply, or "".
func restartOnly(a, b *config.Config) string {
	switch {
	case a.Agent != b.Agent:
		return "agent"
	case !reflect.DeepEqual(a.MQTT, b.MQTT):
		return "mqtt"
	case a.Buffer != b.Buffer:
		return "buffer"
	case a.Control != b.Control:
		return "control"
	case a.Log != b.Log:
		return "log"
	}
	return ""
}
