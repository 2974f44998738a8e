package points

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/mtt"
)

const site = `agent: {id: gw-01, site: site-0001}
mqtt: {brokers: ["tcp://127.0.0.1:1883"]}
buses:
  - {name: plc-1, protocol: tcp, address: "127.0.0.1:502", timeout: 300ms}
outputs:
  - {name: breaker-3, modbus: {bus: plc-1, slave: 1, coil: 100}, feed: FEED-3}
sensors:
  - {id: CH4-101, type: methane, bus: plc-1, slave: 1, table: holding, address: 0, scale: 0.01, unit: "%CH4",
     range: [0, 4], location: coal_face, cut_outputs: [breaker-3], place: "1201 fully-mechanised face", x: 10.5, y: 2, z: -320,
     calibration_due: "2026-12-15"}
  - {id: CO-101, type: co, bus: plc-1, slave: 1, table: holding, address: 1, unit: ppm, range: [0, 1000]}
  - {id: FEED-3, type: digital, bus: plc-1, slave: 1, table: discrete, address: 3}
`

func load(t *testing.T, doc string) *config.Config {
	t.Helper()
	l, err := config.Parse("site.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return l.Config
}

// TestRegistry_WhatAConsumerNeeds: each sensor's type code, point code,
// unit, range, place and coordinates, the limits in force after presets
// and defaults with their sources, its cut-off area and feed relation;
// each output with what controls it; and the message validates.
func TestRegistry_WhatAConsumerNeeds(t *testing.T) {
	r := Build(load(t, site), mtt.DefaultCodes())
	ch4, _ := r.Point("CH4-101")
	if ch4.TypeCode != "0001" || ch4.PointCode != "site-0001.CH4-101" || ch4.Unit != "%CH4" || ch4.Range[1] != 4 ||
		ch4.Place != "1201 fully-mechanised face" || *ch4.Z != -320 || ch4.Kind != "MN" || ch4.CalibrationDueTS == 0 {
		t.Fatalf("CH4-101 %+v", ch4)
	}
	if len(ch4.Limits) != 2 {
		t.Fatalf("CH4-101 limits %+v", ch4.Limits)
	}
	cut := ch4.Limits[1]
	if cut.Level != "cutoff" || cut.Direction != "high" || *cut.Limit != 1.5 || *cut.Restore != 1.0 || cut.OnFault != "cut" ||
		cut.Outputs[0] != "breaker-3" || !strings.Contains(cut.Source, "Art. 498: coal_face") {
		t.Fatalf("coal-face cut-off %+v", cut)
	}
	if len(ch4.Cuts) != 1 || ch4.Cuts[0] != "breaker-3" {
		t.Fatalf("CH4-101 cut-off area %v", ch4.Cuts)
	}
	co, _ := r.Point("CO-101")
	if co.TypeCode != "0004" || len(co.Limits) != 1 || *co.Limits[0].Limit != 24 || !strings.Contains(co.Limits[0].Source, "type default") {
		t.Fatalf("CO-101 %+v", co)
	}
	feed, _ := r.Point("FEED-3")
	if feed.Kind != "KG" || len(feed.FeedOf) != 1 || feed.FeedOf[0] != "breaker-3" {
		t.Fatalf("FEED-3 %+v", feed)
	}
	if o := r.Outputs[0]; o.Kind != "modbus" || o.ControlledBy[0] != "CH4-101" || o.Feed != "FEED-3" {
		t.Fatalf("breaker-3 %+v", o)
	}
	m := r.Message("gw-01", "site-0001", time.Unix(1_800_000_000, 0), map[string]bool{"CH4-101": true})
	b, err := contract.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := contract.Validate(contract.KindPoints, b); err != nil {
		t.Fatalf("registry off contract: %v\n%s", err, b)
	}
	var back contract.Points
	_ = json.Unmarshal(b, &back)
	if !back.Sensors[0].Calibrating || back.Sensors[1].Calibrating {
		t.Fatal("calibration state not in the message")
	}
	// The hash names the content, not the time or the calibration state.
	if r2 := Build(load(t, site), mtt.DefaultCodes()); r2.Hash != r.Hash {
		t.Fatal("the same config gives another hash")
	}
	if r3 := Build(load(t, strings.Replace(site, "range: [0, 4]", "range: [0, 5]", 1)), mtt.DefaultCodes()); r3.Hash == r.Hash {
		t.Fatal("a changed range keeps the hash")
	}
}

// TestRegistry_PointCodesFromTheMineCode: with an MT/T uplink, point codes
// are built from its mine code (kind, type code, sequence), and the
// regulator's definitions carry the limits in force.
func TestRegistry_PointCodesFromTheMineCode(t *testing.T) {
	doc := site + `uplinks:
  - {kind: mtt1201, mine_code: "140421000123", mine_name: Test Mine, system_model: KJ95X, system_name: Safety monitoring,
     manufacturer: Test, safety_mark_valid_until: "2030-01-01",
     sftp: {address: "127.0.0.1:22", user: u, key_file: /etc/hostname, known_hosts_file: /etc/hostname}}
`
	r := Build(load(t, doc), mtt.DefaultCodes())
	ch4, _ := r.Point("CH4-101")
	if !strings.HasPrefix(ch4.PointCode, "14042100012301MN0001") || len(ch4.PointCode) != 28 {
		t.Fatalf("point code %q", ch4.PointCode)
	}
	pts := r.MTT(mtt.DefaultCodes())
	if p := pts[0]; p.UpperAlarm.V != 1.0 || p.UpperCutoff.V != 1.5 || p.UpperRestore.V != 1.0 || p.RangeHigh.V != 4 || !p.Z.OK {
		t.Fatalf("definition %+v", p)
	}
}

// TestRegistry_CarriesWhatV2NeedsToScaleBack: each sensor's decimals (from
// its scale, 0 for a switch) and resolution, and a reg that names the
// sensor table alone: a limit change keeps it, a new sensor changes it.
func TestRegistry_CarriesWhatV2NeedsToScaleBack(t *testing.T) {
	r := Build(load(t, site), mtt.DefaultCodes())
	ch4, _ := r.Point("CH4-101")
	co, _ := r.Point("CO-101")
	feed, _ := r.Point("FEED-3")
	if ch4.Decimals != 2 || ch4.Resolution != 0.01 || co.Decimals != 0 || co.Resolution != 1 || feed.Decimals != 0 {
		t.Fatalf("decimals/resolution: CH4 %d %v, CO %d %v, FEED %d", ch4.Decimals, ch4.Resolution, co.Decimals, co.Resolution, feed.Decimals)
	}
	if r.Reg != contract.RegHash(r.Sensors) || r.Index().Reg() != r.Reg || len(r.Reg) != 16 {
		t.Fatalf("reg %q, index reg %q", r.Reg, r.Index().Reg())
	}
	if m := r.Message("gw-01", "site-0001", time.Unix(1, 0), nil); m.Reg != r.Reg {
		t.Fatalf("message reg %q, want %q", m.Reg, r.Reg)
	}
	limits := Build(load(t, strings.Replace(site, "range: [0, 1000]", "range: [0, 500]", 1)), mtt.DefaultCodes())
	if limits.Reg != r.Reg || limits.Hash == r.Hash {
		t.Fatalf("a changed range: reg %s→%s (want kept), hash %s→%s (want changed)", r.Reg, limits.Reg, r.Hash, limits.Hash)
	}
	more := Build(load(t, site+"  - {id: CO-102, type: co, bus: plc-1, slave: 1, table: holding, address: 2, unit: ppm}\n"), mtt.DefaultCodes())
	if more.Reg == r.Reg {
		t.Fatal("a new sensor keeps the reg")
	}
	rescaled := Build(load(t, strings.Replace(site, "scale: 0.01", "scale: 0.1", 1)), mtt.DefaultCodes())
	if rescaled.Reg == r.Reg {
		t.Fatal("a sensor with other decimals keeps the reg")
	}
}
