package modbus

import (
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
)

var t0 = time.Unix(1_700_000_000, 0)

// at returns t0 + d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// An over-subscribed bus keeps on time every read its cut-offs depend
// on, by role as config.Config.OnTime gives it, not by sensor type: the
// fan-running contact of a ventilation-power interlock, a breaker's feed
// contact, a wind cut-off, a methane sensor. Only the comfort sensors
// (a temperature, and a CO that only reports) stretch, never beyond 30 s.
func TestPlan_OnTimeByRoleOnlyComfortStretches(t *testing.T) {
	no := false
	sensors := []config.Sensor{
		{ID: "FAN", Type: "digital", Rules: []config.Rule{{Level: "cutoff", Equals: &no, Outputs: []string{"BRK"}}}},
		{ID: "FEED", Type: "digital"},
		{ID: "WIND", Type: "wind", Rules: []config.Rule{{Level: "cutoff", Below: f64(0.25), Outputs: []string{"BRK"}}}},
		{ID: "SIREN-LEVEL", Type: "water_level", Rules: []config.Rule{{Level: "red", Above: f64(10), Outputs: []string{"SIREN"}}}},
		{ID: "CH4", Type: "methane"},
		{ID: "TEMP", Type: "temperature", Rules: []config.Rule{{Level: "alarm", Above: f64(30)}}},
		{ID: "CO", Type: "co", Unit: "mg/m3"}, // no default rules in that unit: reports only
	}
	cfg := &config.Config{Sensors: sensors, Outputs: []config.Output{{Name: "BRK", Feed: "FEED"}, {Name: "SIREN"}}}
	var groups []*group
	byID := map[string]*group{}
	for _, s := range sensors {
		g := &group{interval: time.Second, cost: 300 * time.Millisecond, onTime: cfg.OnTime(s.ID), members: []*point{{}}}
		groups = append(groups, g)
		byID[s.ID] = g
	}
	pl := plan(groups)
	if pl.load < 2 || pl.stretched != 2 {
		t.Errorf("plan %+v, want load 2.1 with the 2 comfort sensors stretched", pl)
	}
	for id, want := range map[string]int64{"FAN": 1, "FEED": 1, "WIND": 1, "SIREN-LEVEL": 1, "CH4": 1, "TEMP": 30, "CO": 30} {
		if got := byID[id].stretch; got != want {
			t.Errorf("%s (on time: %v) stretched ×%d, want ×%d", id, byID[id].onTime, got, want)
		}
	}
	// The on-time reads are picked first even when a comfort read's tick
	// is earlier.
	for _, g := range groups {
		g.next = at(time.Second)
	}
	byID["TEMP"].next, byID["CO"].next = at(0), at(0)
	if g := pick(groups, at(2*time.Second)); g != byID["FAN"] {
		t.Errorf("picked %+v first, want the fan contact", g)
	}
}

// pick: on-time reads first, then the earliest tick, then the shorter
// interval; nothing that is not due.
func TestPick_OnTimeFirstThenEarliest(t *testing.T) {
	mk := func(onTime bool, next time.Duration, iv time.Duration) *group {
		return &group{onTime: onTime, next: at(next), interval: iv}
	}
	for _, c := range []struct {
		name   string
		groups []*group
		now    time.Duration
		want   int // index, -1 = none
	}{
		{"nothing due", []*group{mk(true, 2*time.Second, time.Second), mk(false, time.Second+1, time.Second)}, time.Second, -1},
		{"on time before an earlier comfort tick", []*group{mk(false, 0, time.Second), mk(true, 900*time.Millisecond, time.Second)}, time.Second, 1},
		{"earliest among on-time", []*group{mk(true, 500*time.Millisecond, time.Second), mk(true, 100*time.Millisecond, time.Second)}, time.Second, 1},
		{"same tick: shorter interval", []*group{mk(true, 0, time.Second), mk(true, 0, 200*time.Millisecond)}, 0, 1},
		{"same tick and interval: first configured", []*group{mk(false, 0, time.Second), mk(false, 0, time.Second)}, 0, 0},
		{"comfort when no on-time is due", []*group{mk(true, 2*time.Second, time.Second), mk(false, 0, time.Second)}, time.Second, 1},
	} {
		got := pick(c.groups, at(c.now))
		want := (*group)(nil)
		if c.want >= 0 {
			want = c.groups[c.want]
		}
		if got != want {
			t.Errorf("%s: picked %+v, want %+v", c.name, got, want)
		}
	}
}

// fits: a retry must end by the next tick of every on-time read; a read
// that is not on time must not delay any read.
func TestFits_RetryNeverPushesAnOnTimeReadPastItsTick(t *testing.T) {
	onTime := &group{onTime: true, next: at(time.Second)}
	comfort := &group{next: at(600 * time.Millisecond)}
	groups := []*group{onTime, comfort}
	for _, c := range []struct {
		name string
		g    *group
		now  time.Duration
		d    time.Duration
		want bool
	}{
		{"on-time retry ending at the on-time tick", onTime, 500 * time.Millisecond, 500 * time.Millisecond, true},
		{"on-time retry 1 ms past it", onTime, 501 * time.Millisecond, 500 * time.Millisecond, false},
		{"on-time retry may delay a comfort read", onTime, 300 * time.Millisecond, 500 * time.Millisecond, true},
		{"comfort retry must not delay a comfort read", comfort, 300 * time.Millisecond, 500 * time.Millisecond, false},
		{"comfort retry before every tick", comfort, 50 * time.Millisecond, 500 * time.Millisecond, true},
		{"an on-time read already due", onTime, 1100 * time.Millisecond, time.Millisecond, false},
	} {
		if got := fits(groups, c.g, at(c.now), c.d); got != c.want {
			t.Errorf("%s: fits = %v, want %v", c.name, got, c.want)
		}
	}
}

// When on-time reads alone fill the bus, the other reads are slowed down,
// but never beyond the 30 s polling cycle of GB 50581-2010 §3.1.4: a water
// level at 1 s is read at least every 30 s.
func TestPlan_StretchWithin30s(t *testing.T) {
	cut := &group{onTime: true, interval: 200 * time.Millisecond, cost: 190 * time.Millisecond}
	level := &group{interval: time.Second, cost: 20 * time.Millisecond}
	slow := &group{interval: 20 * time.Second, cost: 20 * time.Millisecond}
	plan([]*group{cut, level, slow})
	if cut.stretch != 1 {
		t.Errorf("on-time stretch = %d, want 1", cut.stretch)
	}
	if level.stretch != 30 {
		t.Errorf("1 s read stretched ×%d, want ×30 (30 s)", level.stretch)
	}
	if slow.stretch != 1 {
		t.Errorf("20 s read stretched ×%d, want ×1 (already near 30 s)", slow.stretch)
	}
}
