package app

import (
	"context"
	"path/filepath"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/statefile"
	"github.com/hazmon/hazmon/internal/stats"
	"github.com/hazmon/hazmon/internal/store"
)

// StatsFile keeps the current statistics window in agent.data_dir, so that
// a restart inside it carries on with it (flagged partial).
const StatsFile = "stats.json"

// StatsSaveEvery is how often the current window is saved (and at a clean
// stop): a crash loses at most this much of the window's counts, and the
// window is marked partial anyway. Each save rewrites the whole window
// (about 250 bytes per sensor, 125 kB at 500 sensors, two fsyncs): every
// 10 s that was a quarter of the agent's disk writes at 500 sensors.
const StatsSaveEvery = time.Minute

// newAggregator builds the statistics of cfg, carrying on with the window
// saved by the last run when it is the current one; a saved window that
// ended meanwhile is published as partial.
func (a *App) newAggregator(cfg *config.Config, now time.Time) *stats.Aggregator {
	var specs []stats.SensorSpec
	for _, s := range cfg.Sensors {
		specs = append(specs, stats.SensorSpec{ID: s.ID, Analog: s.Format != "bool"})
	}
	var outs []string
	for _, o := range cfg.Outputs {
		outs = append(outs, o.Name)
	}
	agg := stats.New(cfg.Stats.Interval.D(), specs, outs, now)
	var saved stats.Saved
	if err := statefile.Read(filepath.Join(cfg.Agent.DataDir, StatsFile), &saved); err == nil {
		if w, closed := agg.Restore(saved, now); closed {
			a.emitStats(w)
		}
	}
	return agg
}

// statsTick feeds the outputs' totals to the statistics, closes a window
// that has ended (published on …/stats and to the regulator's uplinks) and
// saves the current one now and then. Called by the recorder goroutine.
func (a *App) statsTick(ctx context.Context, now time.Time, save bool) {
	if a.agg == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	snap, err := a.core.OutputsSnapshot(sctx)
	cancel()
	if err == nil {
		totals := make(map[string]stats.OutputTotals, len(snap.Outputs))
		for _, o := range snap.Outputs {
			totals[o.Name] = stats.OutputTotals{CutS: o.CutS, Cuts: o.Cuts}
		}
		a.agg.Outputs(totals)
	}
	if w, done := a.agg.Tick(now); done {
		a.emitStats(w)
	}
	if save {
		a.state.setStats(a.agg.Save(now))
	}
}

// emitStats buffers a closed window for the …/stats stream and hands it
// to the regulator's uplinks.
func (a *App) emitStats(w stats.Window) {
	a.append(store.Statistics, w.To, statsPayload(w))
	a.exportStats(a.current(), w)
}

// statsPayload is a window in its contract form.
func statsPayload(w stats.Window) contract.Stats {
	m := contract.Stats{FromTS: w.From.UnixMilli(), ToTS: w.To.UnixMilli(), Partial: w.Partial,
		Sensors: map[string]contract.SensorStats{}, Outputs: map[string]contract.OutputStats{}, Alarms: map[string]int{}}
	for id, s := range w.Sensors {
		ss := contract.SensorStats{Count: s.Count, Faults: s.Faults, StatusS: s.Seconds()}
		if s.Analog && s.Count > 0 {
			mean, mx, mn := s.Mean(), s.Max, s.Min
			ss.Mean, ss.Max, ss.MaxTS, ss.Min, ss.MinTS = &mean, &mx, s.MaxAt.UnixMilli(), &mn, s.MinAt.UnixMilli()
		}
		m.Sensors[id] = ss
	}
	for name, o := range w.Outputs {
		m.Outputs[name] = contract.OutputStats{CutS: o.CutS, Cuts: o.Cuts}
	}
	for l, n := range w.Alarms {
		m.Alarms[l] = n
	}
	return m
}
