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
// file without dropping the outputs' state:
//
//  1. the old safety path is frozen: its rule engine stops taking readings
//     and stops driving the outputs, which its manager holds as they are;
//  2. the new graph is built: its rule engine inherits the frozen one's
//     state (rules.Engine.Inherit: an edited raised rule stays raised), its
//     active alarms keep their alarm_id, and its output manager takes over
//     unchanged outputs as they are (actuate.Options.Restored); a build
//     error thaws the old graph, which carries on;
//  3. the old manager lets go: outputs the new file moves or removes are cut
//     and confirmed through the old buses first (actuate.Manager.Release);
//  4. the old sources stop and the new ones start.
//
// From 1 to 4 (build time plus at most about one bus timeout) readings are
// not evaluated by any rule. A reload is refused once shutdown began and
// while an output test runs. The buffer and the publisher are not touched:
// nothing buffered is lost.
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
	if old.safety.testing() {
		return false, warnings, errors.New("an output test is running: reload after it ends (the running config stays)")
	}
	old.freeze()
	g, err := a.build(next, old)
	if err != nil {
		old.thaw()
		a.log.Error("reload rejected: the running config stays", "file", a.opts.ConfigPath, "err", err)
		return false, warnings, fmt.Errorf("the running config stays: %w", err)
	}
	a.log.Info("reload: handing over to the new config; outputs keep their state",
		"file", a.opts.ConfigPath, "buses", len(next.Buses), "sensors", len(next.Sensors), "outputs", len(next.Outputs))
	old.releaseOutputs(next, a.log) // moved or removed outputs are cut through the old buses
	old.stopSources()
	a.gmu.Lock()
	a.g = g
	if a.srcCtx != nil {
		g.start(a.srcCtx, a.failed)
	}
	a.gmu.Unlock()
	a.pub.SetSensors(sensorIDs(next))
	a.log.Info("reload applied", "file", a.opts.ConfigPath)
	return true, warnings, nil
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
