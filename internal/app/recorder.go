package app

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/safety"
	"github.com/hazmon/hazmon/internal/store"
)

// errNoBuffer is why records are refused while the buffer is unusable.
var errNoBuffer = errors.New("buffer unusable")

// record drains the safety core's outbox until ctx ends (then once more):
// each evaluated reading becomes its sensor's last value (status), the
// retained current snapshot's entry and a telemetry record; each alarm and
// event is logged and buffered. It is the only goroutine that logs them, so
// a stalled log or disk delays only this, never a cut.
func (a *App) record(ctx context.Context) {
	out := a.core.Outbox()
	var items []safety.Item
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastSave := time.Now()
	for {
		select {
		case <-ctx.Done():
			a.recordItems(out.Take(items[:0]))
			if a.agg != nil {
				a.state.setStats(a.agg.Save(time.Now()))
			}
			return
		case <-out.Notify():
		case now := <-t.C:
			save := now.Sub(lastSave) >= StatsSaveEvery
			if save {
				lastSave = now
			}
			a.statsTick(ctx, now, save)
			continue
		}
		items = out.Take(items[:0])
		a.recordItems(items)
		clear(items) // release the readings' strings
	}
}

func (a *App) recordItems(items []safety.Item) {
	pub := a.publisher()
	p := a.current()
	alarms := false
	a.ctl.observe(items)
	for i := range items {
		it := &items[i]
		switch it.Kind {
		case safety.ItemReading:
			r := it.Reading
			a.met.readings.Count(r)
			c := contract.FromReading(r)
			if pub != nil {
				pub.UpdateCurrent(c)
			}
			// Encoded by hand (contract.AppendReading: the bytes
			// contract.Marshal would give), one allocation per reading.
			a.recBuf = contract.AppendReading(a.recBuf[:0], c)
			a.appendData(store.Telemetry, r.Time, slices.Clone(a.recBuf))
			if a.agg != nil {
				if a.agg.Due(r.Time) { // a reading of the next window closes this one
					a.statsTick(context.Background(), r.Time, false)
				}
				a.agg.Reading(r)
			}
			a.exportReading(p, r)
		case safety.ItemAlarm:
			al := alarmPayload(it.Alarm)
			a.log.Warn("alarm", "sensor", al.Sensor, "level", al.Level, "state", al.State, "alarm_id", al.AlarmID, "reason", al.Reason)
			a.append(store.Alarm, it.Alarm.Time, al)
			alarms = true
			if a.agg != nil && it.Alarm.State == safety.StateRaised {
				a.agg.Alarm(it.Alarm.Level)
			}
			a.exportEpisode(p, it.Alarm)
		case safety.ItemEvent:
			e := eventPayload(it.Event)
			a.log.Info("event", "type", e.Type, "detail", e.Detail)
			a.append(store.Event, it.Event.Time, e)
		}
	}
	if alarms {
		active := a.core.ActiveAlarms()
		a.state.setAlarms(active)
		a.retainAlarms(active, time.Now())
	}
}

// retainAlarms makes the active alarms the retained …/alarms message.
func (a *App) retainAlarms(active []safety.Alarm, now time.Time) {
	pub := a.publisher()
	if pub == nil {
		return
	}
	cfg := a.current().cfg
	msg := contract.ActiveAlarms{V: contract.Version, Agent: cfg.Agent.ID, Site: cfg.Agent.Site, TS: now.UnixMilli(),
		Alarms: make([]contract.Alarm, 0, len(active))}
	for _, al := range active {
		msg.Alarms = append(msg.Alarms, alarmPayload(al))
	}
	b, err := contract.Marshal(msg)
	if err != nil {
		a.log.Error("encode the active alarms", "err", err)
		return
	}
	pub.SetRetained(contract.KindAlarms, b)
}

// append queues a record of stream without waiting for the disk. A record
// the buffer refuses (queue full, write error, no buffer) is counted and
// reported in a data_loss event (loss.go), never dropped silently.
func (a *App) append(stream store.Stream, ts time.Time, v any) {
	data, err := contract.Marshal(v)
	if err != nil {
		a.refused(stream, ts, err)
		return
	}
	a.appendData(stream, ts, data)
}

// appendData is append for a record already encoded (data is the store's
// from then on). The store never refuses a record it can hold in memory;
// one it drops later (memory bound) it reports itself, with its rec.
func (a *App) appendData(stream store.Stream, ts time.Time, data []byte) {
	st := a.buffer()
	if st == nil {
		a.refused(stream, ts, errNoBuffer)
		return
	}
	if err := st.AppendAsync(stream, ts, data, nil); err != nil {
		a.refused(stream, ts, err)
	}
}

func (a *App) refused(stream store.Stream, ts time.Time, err error) {
	a.loss.add(stream, ts, err)
	a.appendErrs.Add(1)
	if a.errLog.allow() {
		a.log.Error("buffer: record not stored", "err", err)
	}
}

// event queues an agent event (buffer reset, data loss, ...) for the event stream.
func (a *App) event(e contract.Event) {
	a.append(store.Event, time.UnixMilli(e.TS), e)
}

// alarmPayload is a safety alarm in its contract form (v, seq, agent and
// site are filled in when the message is formed).
func alarmPayload(s safety.Alarm) contract.Alarm {
	a := contract.Alarm{
		AlarmID: s.ID, Sensor: s.Sensor, Level: s.Level, Direction: s.Direction, State: s.State,
		TS: s.Time.UnixMilli(), Outputs: s.Outputs, Calibration: s.Calibration, Reason: s.Reason, Code: string(s.Code),
	}
	if a.Outputs == nil {
		a.Outputs = []string{}
	}
	if s.Valid {
		v := s.Value
		a.Value = &v
	}
	if s.HasLimit {
		l := s.Limit
		a.Limit = &l
	}
	if e := s.Episode; e != nil {
		ep := &contract.Episode{StartTS: e.Start.UnixMilli(), EndTS: e.End.UnixMilli(),
			DurationS: e.Duration().Seconds(), CutS: e.CutS, Partial: e.Partial}
		if e.Values > 0 {
			mx, mn, mean := e.Max, e.Min, e.Mean()
			ep.Max, ep.MaxTS, ep.Min, ep.MinTS, ep.Mean = &mx, e.MaxAt.UnixMilli(), &mn, e.MinAt.UnixMilli(), &mean
		}
		a.Episode = ep
	}
	return a
}

// eventPayload is a safety event in its contract form.
func eventPayload(e safety.Event) contract.Event {
	subject := e.Output
	if subject == "" {
		subject = e.Sensor
	}
	return contract.Event{Type: e.Type, TS: e.Time.UnixMilli(), Subject: subject, Detail: e.Detail}
}
