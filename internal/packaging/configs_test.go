package packaging

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/safety"
)

// loadConfig loads one of configs/*.yaml and fails on an error or a warning.
func loadConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	l, err := config.Load(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range l.Warnings {
		t.Errorf("%s: warning: %v", path, w)
	}
	return l.Config
}

func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "configs", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"example.yaml", "coal-face.yaml", "tailings-pond.yaml", "chemical-tank-farm.yaml", "demo.yaml"} {
		if !slices.ContainsFunc(files, func(f string) bool { return filepath.Base(f) == want }) {
			t.Errorf("configs/%s missing", want)
		}
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c := loadConfig(t, f)
			// The rule engine accepts every sensor's effective rules (hand-written,
			// location preset or type default), as the agent will build it.
			if _, err := safety.NewEngine(c.SensorRules()); err != nil {
				t.Errorf("rules: %v", err)
			}
		})
	}
}

// ruleSet is a compact view of a sensor's rules for assertions: "alarm>=25".
func ruleSet(s config.Sensor) []string {
	var out []string
	for _, r := range s.Rules {
		switch {
		case r.Above != nil:
			out = append(out, fmt.Sprintf("%s>=%g", r.Level, *r.Above))
		case r.Below != nil:
			out = append(out, fmt.Sprintf("%s<=%g", r.Level, *r.Below))
		case r.Equals != nil:
			out = append(out, fmt.Sprintf("%s==%v", r.Level, *r.Equals))
		}
	}
	return out
}

func sensorsOfType(c *config.Config, typ string) []config.Sensor {
	var out []config.Sensor
	for _, s := range c.Sensors {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// TestExampleConfigContent checks each example holds what its site needs.
func TestExampleConfigContent(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "configs")

	t.Run("example", func(t *testing.T) {
		c := loadConfig(t, filepath.Join(dir, "example.yaml"))
		var rtu, tcp bool
		for _, b := range c.Buses {
			rtu = rtu || (b.Protocol == "rtu" && b.Device == "/dev/ttyUSB0")
			tcp = tcp || b.Protocol == "tcp"
		}
		if !rtu || !tcp {
			t.Errorf("want an RTU bus on /dev/ttyUSB0 and a TCP bus, got %+v", c.Buses)
		}
		if c.Agent.DataDir != "/var/lib/hazmon" || c.Control.Socket != "/run/hazmon/hazmon.sock" {
			t.Errorf("data_dir %q, socket %q: want the unit's StateDirectory and RuntimeDirectory", c.Agent.DataDir, c.Control.Socket)
		}
	})

	t.Run("coal-face", func(t *testing.T) {
		c := loadConfig(t, filepath.Join(dir, "coal-face.yaml"))
		ch4 := sensorsOfType(c, "methane")
		if len(ch4) == 0 || ch4[0].Location != "coal_face" {
			t.Fatalf("want a methane sensor at location coal_face, got %+v", ch4)
		}
		if got := ruleSet(ch4[0]); !slices.Equal(got, []string{"alarm>=1", "cutoff>=1.5"}) {
			t.Errorf("face methane rules %v, want alarm ≥ 1.0 and cut-off ≥ 1.5 (Art. 498)", got)
		}
		for _, typ := range []string{"co", "o2", "wind"} {
			if len(sensorsOfType(c, typ)) == 0 {
				t.Errorf("no %s sensor", typ)
			}
		}
		var fan, feed bool
		for _, s := range sensorsOfType(c, "digital") {
			fan = fan || slices.Contains(ruleSet(s), "cutoff==false")
			for _, o := range c.Outputs {
				feed = feed || o.Feed == s.ID
			}
		}
		if !fan || !feed {
			t.Errorf("want a fan-running contact with a cut-off interlock (%v) and a feed contact on the breaker (%v)", fan, feed)
		}
	})

	t.Run("tailings-pond", func(t *testing.T) {
		c := loadConfig(t, filepath.Join(dir, "tailings-pond.yaml"))
		for _, typ := range []string{"water_level", "saturation_line", "rain"} {
			ss := sensorsOfType(c, typ)
			if len(ss) == 0 {
				t.Errorf("no %s sensor", typ)
			}
			for _, s := range ss {
				var levels []string
				for _, r := range s.Rules {
					levels = append(levels, r.Level)
				}
				if !slices.Equal(levels, []string{"blue", "yellow", "orange", "red"}) {
					t.Errorf("%s: levels %v, want blue, yellow, orange, red", s.ID, levels)
				}
			}
		}
	})

	t.Run("chemical-tank-farm", func(t *testing.T) {
		c := loadConfig(t, filepath.Join(dir, "chemical-tank-farm.yaml"))
		lel := sensorsOfType(c, "lel")
		if len(lel) == 0 {
			t.Fatal("no lel sensor")
		}
		for _, s := range lel {
			if got := ruleSet(s); !slices.Equal(got, []string{"alarm>=25", "alarm2>=50"}) {
				t.Errorf("%s: rules %v, want alarm ≥ 25 %%LEL and alarm2 ≥ 50 %%LEL (GB/T 50493-2019)", s.ID, got)
			}
		}
		for _, typ := range []string{"h2s", "level", "pressure"} {
			if len(sensorsOfType(c, typ)) == 0 {
				t.Errorf("no %s sensor", typ)
			}
		}
	})
}
