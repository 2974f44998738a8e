package app

import (
	"context"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/mtt"
	"github.com/hazmon/hazmon/internal/points"
	"github.com/hazmon/hazmon/internal/reading"
)

// registryOf builds the hazard-point registry of cfg, with the code table
// of its first MT/T uplink (overrides included) or the project's own.
func registryOf(cfg *config.Config) (points.Registry, *mtt.Codes) {
	codes := mtt.DefaultCodes()
	for _, u := range cfg.Uplinks {
		if u.Kind == config.UplinkMTT1201 {
			codes = mtt.CodesFromConfig(u.Codes)
			break
		}
	}
	return points.Build(cfg, codes), codes
}

// publishPoints makes the registry the retained …/points message, with
// the sensors under calibration now marked, and hands the regulator's
// uplinks their point definitions. Called on start, reload and calibration.
func (a *App) publishPoints(ctx context.Context) {
	p := a.current()
	calibrating := map[string]bool{}
	if snap, err := a.core.Snapshot(ctx); err == nil {
		for id, st := range snap.Sensors {
			calibrating[id] = st == reading.StatusCalibrating
		}
	}
	for _, ex := range a.exporters {
		ex.SetPoints(p.reg.MTT(p.codes))
	}
	pub := a.publisher()
	if pub == nil {
		return
	}
	msg := p.reg.Message(p.cfg.Agent.ID, p.cfg.Agent.Site, time.Now(), calibrating)
	b, err := contract.Marshal(msg)
	if err != nil {
		a.log.Error("encode the point registry", "err", err)
		return
	}
	pub.SetTelemetryIndex(p.reg.Index())
	pub.SetRetained(contract.KindPoints, b)
}
