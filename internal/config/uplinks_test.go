package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// uplinkYAML is validYAML with one mtt1201 uplink; KEY and KNOWN are
// replaced by files that exist.
const uplinkYAML = validYAML + `uplinks:
  - kind: mtt1201
    mine_code: "140105001234"
    mine_name: 示例煤矿
    system_model: KJ95X
    system_name: 安全监控系统
    manufacturer: 示例科技
    safety_mark_valid_until: "2099-12-31"
    sftp:
      address: 10.20.0.5:22
      user: upload
      key_file: KEY
      known_hosts_file: KNOWN
`

func parseUplink(t *testing.T, old, new string) (*Loaded, error) {
	t.Helper()
	dir := t.TempDir()
	key, known := filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts")
	for _, f := range []string{key, known} {
		if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	y := uplinkYAML
	if old != "" {
		e := strings.Replace(y, old, new, 1)
		if e == y {
			t.Fatalf("edit %q did not apply", old)
		}
		y = e
	}
	y = strings.NewReplacer("KEY", key, "KNOWN", known).Replace(y)
	return Parse("u.yaml", []byte(y))
}

// With no uplinks key there is no uplink: the regulator's files are off by
// default.
func TestUplinks_OffByDefault(t *testing.T) {
	l, err := Parse("hazmon.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Config.Uplinks) != 0 {
		t.Fatalf("uplinks = %+v, want none", l.Config.Uplinks)
	}
}

// An uplink given only what is required gets the documented defaults:
// real-time every 30 s, statistics every 5 min, UTC+8, a spool of its own
// under agent.data_dir, 64 MiB / 20000 files, the login directory.
func TestUplinks_Defaults(t *testing.T) {
	l, err := parseUplink(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	u := l.Config.Uplinks[0]
	if u.Name != "mtt1201" || u.Interval.D() != 30*time.Second || u.StatsInterval.D() != 5*time.Minute ||
		u.TimeZone != "+08:00" || u.SpoolDir != "/tmp/hazmon/uplink-mtt1201" ||
		u.SpoolMaxBytes != 64<<20 || u.SpoolMaxFiles != 20000 || u.SFTP.RemoteDir != "." ||
		u.SFTP.Timeout.D() != 30*time.Second || u.SFTP.RetryMax.D() != time.Minute {
		t.Fatalf("defaults not applied: %+v", u)
	}
	loc, err := u.Location()
	if err != nil {
		t.Fatal(err)
	}
	if _, off := time.Date(2025, 1, 1, 0, 0, 0, 0, loc).Zone(); off != 8*3600 {
		t.Fatalf("default zone offset %d s, want UTC+8", off)
	}
}

// Every rule of the section is checked with the key path in the message.
func TestUplinks_Errors(t *testing.T) {
	for _, c := range []struct{ old, new, path, msg string }{
		{"kind: mtt1201", "kind: ftp", "uplinks[0].kind", "the only kind is mtt1201"},
		{`"140105001234"`, `"14010500123"`, "uplinks[0].mine_code", "12 digits"},
		{`"140105001234"`, `"14010500123X"`, "uplinks[0].mine_code", "12 digits"},
		{"mine_name: 示例煤矿", "mine_name: 示例;煤矿", "uplinks[0].mine_name", "separator"},
		{"mine_name: 示例煤矿", "mine_name: 示例~煤矿", "uplinks[0].mine_name", "separator"},
		{"mine_name: 示例煤矿", "mine_name: 示例|煤矿", "uplinks[0].mine_name", "separator"},
		{"mine_name: 示例煤矿", `mine_name: "示例\n煤矿"`, "uplinks[0].mine_name", "line break"},
		{"mine_name: 示例煤矿", "mine_name: 示例煤矿（一号井）", "uplinks[0].mine_name", "full-width"},
		{"system_model: KJ95X", "system_model: ＫＪ95X", "uplinks[0].system_model", "full-width"},
		{"    manufacturer: 示例科技\n", "", "uplinks[0].manufacturer", "required"},
		{`"2099-12-31"`, `"31.12.2099"`, "uplinks[0].safety_mark_valid_until", "not a date"},
		{"    sftp:", "    interval: 500ms\n    sftp:", "uplinks[0].interval", "outside"},
		{"    sftp:", "    stats_interval: 30s\n    sftp:", "uplinks[0].stats_interval", "outside"},
		{"    sftp:", "    time_zone: Mars/Olympus\n    sftp:", "uplinks[0].time_zone", "Mars/Olympus"},
		{"    sftp:", "    time_zone: \"+8\"\n    sftp:", "uplinks[0].time_zone", "+08:00"},
		{"    sftp:", "    spool_max_bytes: 1000\n    sftp:", "uplinks[0].spool_max_bytes", "too small"},
		{"    sftp:", "    spool_dir: /tmp/hazmon\n    sftp:", "uplinks[0].spool_dir", "not agent.data_dir"},
		{"10.20.0.5:22", "10.20.0.5", "uplinks[0].sftp.address", "host:port"},
		{"      user: upload\n", "", "uplinks[0].sftp.user", "required"},
		{"      known_hosts_file: KNOWN\n", "", "uplinks[0].sftp.known_hosts_file", "always verified"},
		{"known_hosts_file: KNOWN", "known_hosts_file: /nonexistent/known_hosts", "uplinks[0].sftp.known_hosts_file", "cannot read"},
		{"      key_file: KEY\n", "", "uplinks[0].sftp.key_file", "required"},
		{"    sftp:", "    codes: {sensor_types: {co2: \"9\"}}\n    sftp:", "uplinks[0].codes.sensor_types.co2", "4 digits"},
		{"    sftp:", "    codes: {type_names: {\"0009\": \"CO2;x\"}}\n    sftp:", "uplinks[0].codes.type_names.0009", "separator"},
		{"    sftp:", "    codes: {status: {\"fault/timeout\": 256}}\n    sftp:", "uplinks[0].codes.status.fault/timeout", "0..255"},
		{"    sftp:", "    codes: {status: {\"Fault Timeout\": 16}}\n    sftp:", "uplinks[0].codes.status", "fault/<fault code>"},
		{"    sftp:", "    codes: {abnormal: {cutoff: \"2\"}}\n    sftp:", "uplinks[0].codes.abnormal.cutoff", "3 digits"},
	} {
		_, err := parseUplink(t, c.old, c.new)
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%q → %q: err = %v, want a config error", c.old, c.new, err)
			continue
		}
		found := false
		for _, p := range ce.Problems {
			if p.Path == c.path && strings.Contains(p.Message, c.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q → %q: want %s: …%s…, got\n%v", c.old, c.new, c.path, c.msg, err)
		}
	}
}

// Two uplinks (two regulators) need distinct names, hence distinct spools.
func TestUplinks_TwoNeedDistinctNames(t *testing.T) {
	second := `  - {kind: mtt1201, NAME mine_code: "140105001234", mine_name: 示例煤矿, system_model: KJ95X,
     system_name: 安全监控系统, manufacturer: 示例科技, safety_mark_valid_until: "2099-12-31",
     sftp: {address: "10.30.0.5:22", user: upload, key_file: KEY, known_hosts_file: KNOWN}}
`
	end := "      known_hosts_file: KNOWN\n"
	_, err := parseUplink(t, end, end+strings.Replace(second, "NAME ", "", 1))
	if err == nil || !strings.Contains(err.Error(), `uplinks[1].name: "mtt1201" is already used by uplinks[0]`) {
		t.Fatalf("err = %v, want the second uplink's name refused", err)
	}
	l, err := parseUplink(t, end, end+strings.Replace(second, "NAME", "name: province,", 1))
	if err != nil {
		t.Fatalf("distinct names: %v", err)
	}
	if a, b := l.Config.Uplinks[0].SpoolDir, l.Config.Uplinks[1].SpoolDir; a == b {
		t.Fatalf("both uplinks spool in %s", a)
	}
}

// Zones: fixed offsets either side of UTC, a zone name, and Asia/Shanghai
// even without a zone database.
func TestUplink_Location(t *testing.T) {
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	for zone, want := range map[string]int{"": 8 * 3600, "+08:00": 8 * 3600, "-03:30": -(3*3600 + 1800), "Asia/Shanghai": 8 * 3600, "UTC": 0} {
		loc, err := Uplink{TimeZone: zone}.Location()
		if err != nil {
			t.Fatalf("%q: %v", zone, err)
		}
		if _, off := at.In(loc).Zone(); off != want {
			t.Errorf("%q: offset %d, want %d", zone, off, want)
		}
	}
	if _, err := (Uplink{TimeZone: "+25:00"}).Location(); err == nil {
		t.Error("+25:00 accepted")
	}
}

// Chinese names and ordinary half-width punctuation are fit for the files.
func TestMTTTextProblem_AcceptsChineseText(t *testing.T) {
	for _, s := range []string{"示例煤矿", "KJ95X 安全监控系统", "1#回风巷", "Mine (No. 2)", "东翼-3"} {
		if msg := MTTTextProblem(s); msg != "" {
			t.Errorf("%q refused: %s", s, msg)
		}
	}
}
