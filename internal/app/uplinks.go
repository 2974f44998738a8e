package app

import (
	"context"
	"strings"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mtt"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
	"github.com/hazmon/hazmon/internal/stats"
)

// startExporters builds the regulator uplinks (MT/T 1201.1-2023 files by
// SFTP) and runs them under ctx. One that cannot be built is logged and
// left out: it never stops monitoring. It returns when they are running.
func (a *App) startExporters(ctx context.Context, cfg *config.Config) (wait func()) {
	var done []<-chan error
	for _, u := range cfg.Uplinks {
		if u.Kind != config.UplinkMTT1201 {
			continue
		}
		log := a.log.With("component", "uplink", "uplink", u.Name)
		o, err := mtt.OptionsFromConfig(u, log)
		if err == nil {
			var ex *mtt.Exporter
			if ex, err = mtt.New(o); err == nil {
				a.exporters = append(a.exporters, ex)
				done = append(done, a.spawn("uplink "+u.Name, func() error { return ex.Run(ctx) }))
				continue
			}
		}
		log.Error("regulator uplink not started: monitoring and MQTT go on without it", "err", err)
	}
	return func() {
		for _, d := range done {
			<-d
		}
	}
}

// exportReading hands a reading to the regulator uplinks (their real-time
// files take each point's latest value).
func (a *App) exportReading(p *plant, r reading.Reading) {
	if len(a.exporters) == 0 {
		return
	}
	pt, ok := p.reg.Point(r.Sensor)
	if !ok {
		return
	}
	v := mtt.Value{Point: pt.PointCode, Status: p.codes.StatusBits(string(r.Status), string(r.Code)), Time: r.Time}
	if r.Valid() {
		v.Value = mtt.Some(r.Value)
	}
	for _, ex := range a.exporters {
		ex.Observe(v)
	}
}

// exportEpisode hands a cleared alarm's episode to the regulator uplinks
// as an abnormal record (MT/T YCBJ), when the code table maps its level.
func (a *App) exportEpisode(p *plant, al safety.Alarm) {
	if len(a.exporters) == 0 || al.Episode == nil {
		return
	}
	pt, ok := p.reg.Point(al.Sensor)
	if !ok {
		return
	}
	qual := al.Direction
	if al.Level == string(safety.LevelFault) {
		qual = string(al.Code)
	}
	typ, ok := p.codes.AbnormalType(al.Level, qual)
	if !ok {
		return
	}
	def := p.reg.MTT(p.codes)
	var mp mtt.Point
	for _, d := range def {
		if d.Code == pt.PointCode {
			mp = d
		}
	}
	ab := mtt.AbnormalFromEpisode(mp, typ, *al.Episode)
	ab.Cause, ab.EnteredBy = al.Reason, p.cfg.Agent.ID
	if len(al.Outputs) > 0 {
		ab.Action = "cut " + strings.Join(al.Outputs, ",")
	}
	for _, ex := range a.exporters {
		ex.Abnormal(ab)
	}
}

// exportStats hands a closed statistics window to the regulator uplinks
// (MT/T TJSJ), one record per analog sensor with readings.
func (a *App) exportStats(p *plant, w stats.Window) {
	if len(a.exporters) == 0 {
		return
	}
	var ss []mtt.Stat
	for id, s := range w.Sensors {
		pt, ok := p.reg.Point(id)
		if !ok || !s.Analog || s.Count == 0 {
			continue
		}
		ss = append(ss, mtt.Stat{Point: pt.PointCode, From: w.From, To: w.To, Max: mtt.Some(s.Max), MaxTime: s.MaxAt,
			Min: mtt.Some(s.Min), MinTime: s.MinAt, Mean: mtt.Some(s.Mean())})
	}
	for _, ex := range a.exporters {
		ex.Stats(ss)
	}
}
