package app

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hazmon/hazmon/internal/actuate"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

// LevelFeedAbnormal is the alarm level of a feed check failure (馈电异常).
const LevelFeedAbnormal = "feed_abnormal"

// TickEvery is how often the safety loop advances the rule engine's timers
// (on-delays, fault unlock, calibration end) without a reading.
const TickEvery = 100 * time.Millisecond

// outputs is what the safety path needs of the actuators (*actuate.Manager).
type outputs interface {
	Apply(changes []safety.Change)
	FeedReading(r reading.Reading)
	State() []actuate.OutputState
	Close(ctx context.Context) error
}

// safety is the safety path: reading → rules → outputs, and alarms into the
// durable buffer. It runs on the caller's goroutine (a bus poller or a GPIO
// reader) under one mutex, so a cut-off reaches the output manager within
// microseconds of the poll, never waiting for the disk or the network.
type safetyPath struct {
	mu     sync.Mutex // guards engine; taken before amu
	engine *safety.Engine
	outs   outputs // nil: no outputs configured
	alarm  func(contract.Alarm)

	ticked   atomic.Int64 // unix ns of the last tick, for the systemd watchdog
	groups   []warningGroup
	memberOf map[string][]int // sensor → indexes into groups
	held     map[string]bool  // outputs under an output test: restores wait for its end
	frozen   bool             // a reload is taking over: the engine no longer takes readings

	amu    sync.Mutex                // guards raised and active
	raised map[string]int64          // "sensor/level" → raise time (ms) of the active alarm, for alarm_id
	active map[string]contract.Alarm // active alarms, for status
}

func newSafety(engine *safety.Engine, outs outputs, alarm func(contract.Alarm)) *safetyPath {
	return &safetyPath{engine: engine, outs: outs, alarm: alarm, held: map[string]bool{},
		raised: map[string]int64{}, active: map[string]contract.Alarm{}}
}

// apply runs the rules on r and returns the reading's status.
func (s *safetyPath) apply(r reading.Reading) reading.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen {
		if !r.Valid() {
			return reading.StatusFault
		}
		st, _ := s.engine.Status(r.Sensor)
		return st
	}
	if s.outs != nil {
		s.outs.FeedReading(r) // a feed sensor is any bool sensor; others are ignored by a map lookup
	}
	now := time.Now()
	status, fx := s.engine.Apply(r, now)
	s.effects(fx)
	for _, gi := range s.memberOf[r.Sensor] {
		s.aggregate(gi, now)
	}
	return status
}

// tick advances the engine's timers.
func (s *safetyPath) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.frozen {
		s.ticked.Store(now.UnixNano())
		return
	}
	s.effects(s.engine.Tick(now))
	for gi := range s.groups {
		s.aggregate(gi, now)
	}
	s.ticked.Store(now.UnixNano())
}

// warningGroup is a tailings pond's set of monitoring items whose colour
// warnings combine (safety.AggregateWarning) into the group's warning.
type warningGroup struct {
	name    string
	members []string
	levels  []safety.Level // scratch, one per member
	level   safety.Level   // current aggregated warning
}

// setGroups installs the warning groups of the config.
func (s *safetyPath) setGroups(gs []config.WarningGroup) {
	s.memberOf = map[string][]int{}
	for i, g := range gs {
		s.groups = append(s.groups, warningGroup{name: g.Name, members: g.Sensors,
			levels: make([]safety.Level, len(g.Sensors)), level: safety.LevelNormal})
		for _, m := range g.Sensors {
			s.memberOf[m] = append(s.memberOf[m], i)
		}
	}
}

// aggregate recomputes group gi's warning and, when it changes, clears the
// old level's alarm and raises the new one (sensor = the group's name).
// A member under calibration or in fault does not count.
func (s *safetyPath) aggregate(gi int, now time.Time) {
	g := &s.groups[gi]
	for i, m := range g.members {
		st, _ := s.engine.Status(m)
		g.levels[i] = safety.Level(st)
	}
	next := safety.AggregateWarning(g.levels)
	if next == g.level {
		return
	}
	ts := now.UnixMilli()
	if g.level != safety.LevelNormal {
		s.emit(contract.Alarm{Sensor: g.name, Level: string(g.level), State: safety.StateCleared, TS: ts, Outputs: []string{}})
	}
	if next != safety.LevelNormal {
		s.emit(contract.Alarm{Sensor: g.name, Level: string(next), State: safety.StateRaised, TS: ts, Outputs: []string{}})
	}
	g.level = next
}

// inheritAlarms carries prev's active alarms (with their raise times, so a
// later "cleared" keeps the alarm_id of its "raised") and warning-group
// levels into s, for a reload. An active alarm the new config can no longer
// clear (its sensor, rule level or group is gone) is cleared now, so the
// platform never keeps an alarm open forever. Call it before s is used.
func (s *safetyPath) inheritAlarms(prev *safetyPath, cfg *config.Config) {
	possible := map[string]bool{}
	for _, sr := range cfg.SensorRules() {
		possible[sr.Sensor+"/"+string(safety.LevelFault)] = true
		// Not feed_abnormal: the new output manager checks the feeds afresh,
		// so an open feed alarm is cleared and raised again if it persists.
		for _, r := range sr.Rules {
			possible[sr.Sensor+"/"+string(r.Level)] = true
		}
	}
	for _, g := range cfg.WarningGroups {
		for _, l := range []safety.Level{safety.LevelBlue, safety.LevelYellow, safety.LevelOrange, safety.LevelRed} {
			possible[g.Name+"/"+string(l)] = true
		}
	}
	type goneAlarm struct {
		a     contract.Alarm
		start int64
	}
	var gone []goneAlarm
	prev.amu.Lock()
	for k, a := range prev.active {
		if !possible[k] {
			gone = append(gone, goneAlarm{a, prev.raised[k]})
			continue
		}
		s.raised[k] = prev.raised[k]
		s.active[k] = a
	}
	prev.amu.Unlock()
	now := time.Now().UnixMilli()
	for _, g := range gone {
		s.amu.Lock()
		s.raised[g.a.Sensor+"/"+g.a.Level] = g.start // the cleared message keeps the raised one's alarm_id
		s.amu.Unlock()
		s.emit(contract.Alarm{Sensor: g.a.Sensor, Level: g.a.Level, State: safety.StateCleared, TS: now, Outputs: []string{}})
	}
	prev.mu.Lock()
	defer prev.mu.Unlock()
	for i := range s.groups {
		for _, pg := range prev.groups {
			if pg.name == s.groups[i].name {
				s.groups[i].level = pg.level
			}
		}
	}
}

// lastTick is when the safety loop last ran.
func (s *safetyPath) lastTick() time.Time { return time.Unix(0, s.ticked.Load()) }

// run ticks the engine until ctx ends.
func (s *safetyPath) run(ctx context.Context) {
	t := time.NewTicker(TickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.tick()
		}
	}
}

// resync sends the engine's demanded state of every output to the
// actuators (through effects, so an output under test stays held). s.mu held.
func (s *safetyPath) resync() {
	var cs []safety.Change
	for _, name := range s.engine.Outputs() {
		cut, _ := s.engine.Cut(name)
		cs = append(cs, safety.Change{Output: name, Cut: cut, Time: time.Now()})
	}
	s.effects(safety.Effects{Changes: cs})
}

// testing reports whether an output test is running.
func (s *safetyPath) testing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held) > 0
}

// testCut cuts output name for an output test and holds every restore of
// it until release is called, which puts back what the rules demand. A
// test may only cut: it refuses an output the rules (or start-up) keep cut,
// since restoring power against a rule is never a test.
func (s *safetyPath) testCut(name string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outs == nil {
		return nil, fmt.Errorf("no outputs are running")
	}
	if s.held[name] {
		return nil, fmt.Errorf("output %s is already under test", name)
	}
	if cut, known := s.engine.Cut(name); !known {
		return nil, fmt.Errorf("no rule controls output %s", name)
	} else if cut {
		return nil, fmt.Errorf("output %s is cut by its rules (or has not read every controlling sensor yet): a test only cuts power that is on", name)
	}
	s.held[name] = true
	s.outs.Apply([]safety.Change{{Output: name, Cut: true, Time: time.Now()}})
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.held, name)
		if s.outs == nil {
			return
		}
		cut, _ := s.engine.Cut(name)
		s.outs.Apply([]safety.Change{{Output: name, Cut: cut, Time: time.Now()}})
	}, nil
}

// setCalibrating marks a sensor as under calibration until the given time.
func (s *safetyPath) setCalibrating(sensor string, until time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.engine.SetCalibrating(sensor, until)
}

// effects hands output changes to the actuators first, then queues alarms.
func (s *safetyPath) effects(fx safety.Effects) {
	if s.outs != nil && len(fx.Changes) > 0 {
		changes := fx.Changes
		if len(s.held) > 0 {
			changes = changes[:0:0]
			for _, c := range fx.Changes {
				if !(s.held[c.Output] && !c.Cut) {
					changes = append(changes, c)
				}
			}
		}
		s.outs.Apply(changes)
	}
	for _, ev := range fx.Events {
		a := contract.Alarm{
			Sensor: ev.Sensor, Level: string(ev.Level), State: ev.State, TS: ev.Time.UnixMilli(),
			Outputs: append([]string{}, ev.Outputs...), Calibration: ev.Calibration,
		}
		if ev.Valid {
			v := ev.Value
			a.Value = &v
		}
		if ev.Level != safety.LevelFault {
			l := ev.Limit
			a.Limit = &l
		}
		s.emit(a)
	}
}

// feed turns a feed abnormal event of the actuators into an alarm.
func (s *safetyPath) feed(ev actuate.FeedEvent) {
	s.emit(contract.Alarm{Sensor: ev.Feed, Level: LevelFeedAbnormal, State: ev.State,
		TS: ev.Time.UnixMilli(), Outputs: []string{ev.Output}})
}

// emit gives an alarm its id (sensor/level/raise ms: raised and cleared
// share it) and queues it. The actuators call it (through feed) from their
// own goroutine or from inside apply, hence its own lock.
func (s *safetyPath) emit(a contract.Alarm) {
	s.amu.Lock()
	defer s.amu.Unlock()
	key := a.Sensor + "/" + a.Level
	if a.Outputs == nil {
		a.Outputs = []string{}
	}
	if a.State == safety.StateRaised {
		s.raised[key] = a.TS
	}
	start, ok := s.raised[key]
	if !ok {
		start = a.TS
	}
	a.AlarmID = key + "/" + strconv.FormatInt(start, 10)
	switch a.State {
	case safety.StateRaised:
		s.active[key] = a
	case safety.StateCleared:
		delete(s.active, key)
		delete(s.raised, key)
	}
	s.alarm(a)
}

// activeAlarms returns the alarms currently raised.
func (s *safetyPath) activeAlarms() []contract.Alarm {
	s.amu.Lock()
	defer s.amu.Unlock()
	out := make([]contract.Alarm, 0, len(s.active))
	for _, a := range s.active {
		out = append(out, a)
	}
	return out
}
