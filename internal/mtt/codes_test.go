package mtt

import (
	"testing"

	"github.com/hazmon/hazmon/internal/config"
)

// hazmon's statuses and fault codes map to the point status bitmask of the
// networking notes; an unknown fault code is still a fault and an unknown
// status is never normal.
func TestCodes_StatusBits(t *testing.T) {
	c := DefaultCodes()
	for _, x := range []struct {
		status, code string
		want         int
	}{
		{"normal", "", 0}, {"alarm", "", 1}, {"alarm2", "", 1}, {"cutoff", "", 3}, {"calibrating", "", 4},
		{"blue", "", 1}, {"red", "", 1},
		{"fault", "", 128}, {"fault", "timeout", 128}, {"fault", "crc", 128}, {"fault", "no_value", 128},
		{"fault", "bus_down", 16}, {"fault", "range", 8}, {"fault", "stale", 32}, {"fault", "new_code_2030", 128},
		{"normal", "range", 0}, // a code only qualifies a fault
		{"something_new", "", 1},
	} {
		if got := c.StatusBits(x.status, x.code); got != x.want {
			t.Errorf("StatusBits(%q, %q) = %d, want %d", x.status, x.code, got, x.want)
		}
	}
}

// Alarm levels map to abnormal types; a low colour rule is a lower
// pre-warning; output alarms have no record.
func TestCodes_AbnormalType(t *testing.T) {
	c := DefaultCodes()
	for _, x := range []struct {
		level, q, want string
		ok             bool
	}{
		{"alarm", "high", "001", true}, {"alarm", "low", "001", true}, {"alarm2", "high", "001", true},
		{"cutoff", "high", "002", true}, {"feed_abnormal", "", "003", true},
		{"fault", "timeout", "004", true}, {"fault", "", "004", true}, {"fault", "bus_down", "006", true},
		{"fault", "range", "008", true}, {"calibrating", "", "007", true},
		{"yellow", "high", "009", true}, {"yellow", "low", "010", true},
		{"output_mismatch", "", "", false}, {"output_unconfirmed", "", "", false},
	} {
		got, ok := c.AbnormalType(x.level, x.q)
		if got != x.want || ok != x.ok {
			t.Errorf("AbnormalType(%q, %q) = %q %v, want %q %v", x.level, x.q, got, ok, x.want, x.ok)
		}
	}
}

// Only the confirmed sensor types ship; a sensor's own type_code wins; a
// site's table entries override or add, entry by entry, without touching
// the shipped tables.
func TestCodes_OverridesFromConfig(t *testing.T) {
	d := DefaultCodes()
	if code, ok := d.SensorType("methane", ""); code != "0001" || !ok {
		t.Fatalf("methane → %q %v", code, ok)
	}
	if code, ok := d.SensorType("co", ""); code != "0004" || !ok {
		t.Fatalf("co → %q %v", code, ok)
	}
	if code, ok := d.SensorType("methane", "0043"); code != "0043" || !ok || d.TypeName(code) != "激光甲烷" {
		t.Fatalf("laser methane override → %q %v %q", code, ok, d.TypeName(code))
	}
	if _, ok := d.SensorType("co2", ""); ok {
		t.Fatal("unconfirmed co2 has a shipped code")
	}
	c := CodesFromConfig(config.UplinkCodes{
		SensorTypes: map[string]string{"co2": "0009"},
		TypeNames:   map[string]string{"0009": "二氧化碳"},
		Status:      map[string]int{"fault/timeout": 16},
		Abnormal:    map[string]string{"fault/timeout": "006", "alarm2": "009"},
	})
	if code, ok := c.SensorType("co2", ""); code != "0009" || !ok || c.TypeName("0009") != "二氧化碳" {
		t.Errorf("co2 → %q %v %q", code, ok, c.TypeName("0009"))
	}
	if c.StatusBits("fault", "timeout") != 16 || c.StatusBits("fault", "bus_down") != 16 || c.StatusBits("fault", "crc") != 128 {
		t.Error("status override not applied entry by entry")
	}
	if a, _ := c.AbnormalType("fault", "timeout"); a != "006" {
		t.Errorf("fault/timeout → %s", a)
	}
	if a, _ := c.AbnormalType("alarm2", "high"); a != "009" {
		t.Errorf("alarm2 → %s", a)
	}
	if a, _ := c.AbnormalType("cutoff", ""); a != "002" {
		t.Errorf("cutoff lost: %s", a)
	}
	if d.StatusBits("fault", "timeout") != 128 || DefaultCodes().StatusBits("fault", "timeout") != 128 {
		t.Error("an override leaked into the shipped tables")
	}
}
