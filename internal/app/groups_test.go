package app

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

// TestSafety_WarningGroup: a tailings pond's items combine per GB 51108-2015
// — 4 blue make yellow, 3 yellow orange, 2 orange red — and each change of
// the pond's level clears the old alarm and raises the new one.
func TestSafety_WarningGroup(t *testing.T) {
	var srs []safety.SensorRules
	var ids []string
	for i := range 4 {
		id := fmt.Sprintf("P%d", i)
		ids = append(ids, id)
		srs = append(srs, safety.SensorRules{Sensor: id, Type: "water_level", Resolution: 0.01, Rules: []safety.Rule{
			{Level: safety.LevelBlue, Above: ptr(10.0)}, {Level: safety.LevelYellow, Above: ptr(20.0)},
			{Level: safety.LevelOrange, Above: ptr(30.0)}, {Level: safety.LevelRed, Above: ptr(40.0)},
		}})
	}
	e, err := safety.NewEngine(srs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	s := newSafety(e, nil, func(a contract.Alarm) {
		if a.Sensor == "POND" {
			got = append(got, a.Level+"/"+a.State)
		}
	})
	s.setGroups([]config.WarningGroup{{Name: "POND", Sensors: ids}})
	set := func(vals ...float64) {
		for i, v := range vals {
			s.apply(reading.Reading{Sensor: ids[i], Type: "water_level", Time: time.Now(), Value: v, Status: reading.StatusNormal})
		}
	}
	step := func(want string, vals ...float64) {
		t.Helper()
		got = nil
		set(vals...)
		if g := strings.Join(got, " "); g != want {
			t.Fatalf("items %v: pond alarms %q, want %q", vals, g, want)
		}
	}
	step("", 1, 1, 1, 1)
	step("blue/raised", 11, 11, 11, 1)
	step("blue/cleared yellow/raised", 11, 11, 11, 11)   // 4 blue → yellow
	step("", 21, 21, 11, 11)                             // 2 yellow: still yellow
	step("yellow/cleared orange/raised", 21, 21, 21, 11) // 3 yellow → orange
	step("orange/cleared red/raised", 31, 31, 21, 11)    // 2 orange → red
	// Items are evaluated one reading at a time, so the pond steps down.
	step("red/cleared orange/raised orange/cleared yellow/raised yellow/cleared blue/raised blue/cleared", 1, 1, 1, 1)
}

func ptr(f float64) *float64 { return &f }
