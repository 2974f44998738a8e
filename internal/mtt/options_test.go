package mtt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mtt/sshdtest"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/safety"
)

// A validated uplinks entry becomes the exporter's options: the headers'
// mine and system, the zone, the cadence, the spool, the site's code
// overrides, and a pusher whose key and known_hosts were read.
func TestOptionsFromConfig(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	hostKey := sshdtest.WriteKey(t, filepath.Join(dir, "host"))
	sshdtest.WriteKey(t, key)
	known := sshdtest.KnownHosts(t, "10.20.0.5:2222", hostKey)
	y := `agent: {id: gw-01, site: s1, data_dir: ` + dir + `}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
buses: [{name: b, protocol: tcp, address: "127.0.0.1:502"}]
sensors: [{id: CH4, type: methane, bus: b, slave: 1, table: holding, address: 0, unit: "%CH4", range: [0, 4]}]
uplinks:
  - {kind: mtt1201, mine_code: "140105001234", mine_name: 示例煤矿, system_model: KJ95X, system_name: 安全监控系统,
     manufacturer: 示例科技, safety_mark_valid_until: "2027-12-31", interval: 10s,
     sftp: {address: "10.20.0.5:2222", user: up, key_file: ` + key + `, known_hosts_file: ` + known + `},
     codes: {status: {"fault/timeout": 16}}}
`
	l, err := config.Parse("h.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	o, err := OptionsFromConfig(l.Config.Uplinks[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Mine != mine || o.Interval != 10*time.Second || o.StatsInterval != 5*time.Minute ||
		o.SpoolDir != filepath.Join(dir, "uplink-mtt1201") || o.SpoolMaxBytes != 64<<20 || o.RetryMax != time.Minute {
		t.Fatalf("options %+v", o)
	}
	if _, off := upload.In(o.Loc).Zone(); off != 8*3600 {
		t.Fatalf("zone offset %d", off)
	}
	if o.Codes.StatusBits("fault", "timeout") != 16 || o.Codes.StatusBits("fault", "crc") != 128 {
		t.Fatal("code overrides not applied")
	}
	if _, ok := o.Uploader.(*SFTP); !ok {
		t.Fatalf("uploader %T", o.Uploader)
	}

	u := l.Config.Uplinks[0]
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OptionsFromConfig(u, nil); err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("a bad key file: err = %v, want it named", err)
	}
}

// An episode becomes an abnormal record with its extremes, their times and
// the mean; an episode without a valid reading (a fault) has them Unknown.
func TestAbnormalFromEpisode(t *testing.T) {
	s := upload.Add(-time.Minute)
	ep := safety.Episode{Start: s, End: upload, Values: 4, Max: 1.8, MaxAt: s.Add(10 * time.Second), Min: 1.5, MinAt: s, Sum: 6.6}
	a := AbnormalFromEpisode(ch4Point(), AbnormalCutoff, ep)
	if a.Point != ch4Code || a.Unit != "%CH4" || a.Place != "1#回风巷" || a.Type != "002" || !a.Start.Equal(s) || !a.End.Equal(upload) ||
		a.Max != Some(1.8) || !a.MaxTime.Equal(ep.MaxAt) || a.Min != Some(1.5) || a.Mean.String() != "1.65" {
		t.Fatalf("record %+v", a)
	}
	f := AbnormalFromEpisode(ch4Point(), AbnormalSensorDisconnected, safety.Episode{Start: s, End: upload})
	if f.Max.OK || f.Min.OK || f.Mean.OK || !f.MaxTime.IsZero() {
		t.Fatalf("fault episode carries values: %+v", f)
	}
}
