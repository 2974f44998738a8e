package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mtt"
	"github.com/hazmon/hazmon/internal/mtt/sshdtest"
)

const mineCode = "140421000123"

// inboxFiles parses every file the regulator's front-end host received,
// failing on a temporary file left behind or a line that does not parse.
func inboxFiles(t *testing.T, srv *sshdtest.Server) map[mtt.FileType][]*mtt.Parsed {
	t.Helper()
	out := map[mtt.FileType][]*mtt.Parsed{}
	ents, err := os.ReadDir(srv.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // an upload under way
		}
		mine, typ, _, err := mtt.ParseName(e.Name(), mtt.DefaultLocation)
		if err != nil || mine != mineCode {
			t.Fatalf("file %s: %v", e.Name(), err)
		}
		data, err := os.ReadFile(filepath.Join(srv.Inbox, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		p, err := mtt.Parse(typ, data)
		if err != nil {
			t.Fatalf("%s does not parse: %v", e.Name(), err)
		}
		out[typ] = append(out[typ], p)
	}
	return out
}

// field returns the named body field of record r of a file of type typ.
func field(typ mtt.FileType, r []string, name string) string {
	return r[mtt.FieldIndex(typ, false, name)]
}

func num(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// abnormalWithMax finds a YCBJ record of an episode whose max is v, and its
// duration.
func abnormalWithMax(t *testing.T, srv *sshdtest.Server, v float64) (dur time.Duration, ok bool) {
	for _, f := range inboxFiles(t, srv)[mtt.TypeYCBJ] {
		for _, r := range f.Body {
			if num(field(mtt.TypeYCBJ, r, "max")) != v {
				continue
			}
			st, e1 := time.ParseInLocation(mtt.TimeLayout, field(mtt.TypeYCBJ, r, "start"), mtt.DefaultLocation)
			en, e2 := time.ParseInLocation(mtt.TimeLayout, field(mtt.TypeYCBJ, r, "end"), mtt.DefaultLocation)
			if e1 == nil && e2 == nil {
				return en.Sub(st), true
			}
		}
	}
	return 0, false
}

// TestRegulatorFiles_ExcursionAndJointOutage: the agent pushes the four
// MT/T 1201.1-2023 file kinds to a real OpenSSH server; a methane excursion
// appears as real-time values, an abnormal record with the right extreme
// and duration, and statistics whose max matches. Then the broker and the
// SFTP server are down together for 2 minutes, with a second excursion
// meanwhile: afterwards nothing is missing from either side.
func TestRegulatorFiles_ExcursionAndJointOutage(t *testing.T) {
	srv := sshdtest.Start(t)
	s := newSafetySite(t)
	c := newConfig(t, s)
	c.Extra = fmt.Sprintf(`stats: {interval: 10s}
uplinks:
  - kind: mtt1201
    name: bureau
    mine_code: %q
    mine_name: Test Mine
    system_model: KJ95X
    system_name: Safety monitoring
    manufacturer: Test
    safety_mark_valid_until: "2030-01-01"
    interval: 2s
    sftp: {address: %q, user: %q, key_file: %q, known_hosts_file: %q, remote_dir: %q, timeout: 5s, retry_max: 2s}
`, mineCode, srv.Proxy.Addr, srv.User, srv.KeyFile, sshdtest.KnownHosts(t, srv.Proxy.Addr, srv.HostPub), srv.Inbox)
	startProc(t, hazmonBin, nil, nil, "run", "--config", c.write(t, ""))
	if within(wait, s.energised) < 0 {
		t.Fatal("breaker never energised")
	}
	if within(30*time.Second, func() bool { return len(inboxFiles(t, srv)[mtt.TypeCDDY]) > 0 }) < 0 {
		t.Fatal("no point definitions pushed")
	}
	defs := inboxFiles(t, srv)[mtt.TypeCDDY][0]
	var code string
	for _, r := range defs.Body {
		if field(mtt.TypeCDDY, r, "upper cut-off") == "1.5" {
			code = field(mtt.TypeCDDY, r, "point code")
		}
	}
	if !strings.HasPrefix(code, mineCode+"01MN0001") {
		t.Fatalf("no definition of CH4-101 with its cut-off 1.5 (point codes: %v)", defs.Body)
	}

	excursion := func(v float64) time.Duration {
		s.setCH4(0, v)
		start := time.Now()
		time.Sleep(2 * time.Second)
		s.setCH4(0, 0.4)
		return time.Since(start)
	}
	took := excursion(1.6)
	if within(30*time.Second, func() bool { _, ok := abnormalWithMax(t, srv, 1.6); return ok }) < 0 {
		t.Fatal("no abnormal record of the excursion")
	}
	if d, _ := abnormalWithMax(t, srv, 1.6); math.Abs(d.Seconds()-took.Seconds()) > 1.5 {
		t.Fatalf("abnormal record lasts %v, the excursion %v", d, took)
	}
	sawValue := func(v float64) bool {
		for _, f := range inboxFiles(t, srv)[mtt.TypeCDSS] {
			for _, r := range f.Body {
				if field(mtt.TypeCDSS, r, "point code") == code && num(field(mtt.TypeCDSS, r, "value")) == v {
					return true
				}
			}
		}
		return false
	}
	if !sawValue(1.6) {
		t.Fatal("the excursion is in no real-time file")
	}
	statsMax := func(v float64) bool {
		for _, f := range inboxFiles(t, srv)[mtt.TypeTJSJ] {
			for _, r := range f.Body {
				if field(mtt.TypeTJSJ, r, "point code") == code && num(field(mtt.TypeTJSJ, r, "max")) == v {
					return true
				}
			}
		}
		return false
	}
	if within(30*time.Second, func() bool { return statsMax(1.6) }) < 0 {
		t.Fatal("no statistics with the excursion's max")
	}

	// Broker and front-end host down together for 2 minutes.
	realtime := len(inboxFiles(t, srv)[mtt.TypeCDSS])
	s.broker.Stop()
	srv.Proxy.Down()
	downAt := time.Now()
	time.Sleep(30 * time.Second)
	excursion(1.8)
	time.Sleep(2*time.Minute - time.Since(downAt))
	backAt := time.Now()
	s.broker.Start()
	srv.Proxy.Up(t)

	if within(90*time.Second, func() bool { _, ok := abnormalWithMax(t, srv, 1.8); return ok && statsMax(1.8) && sawValue(1.8) }) < 0 {
		t.Fatal("the excursion during the outage did not reach the regulator's files")
	}
	outage := backAt.Sub(downAt)
	var n int
	if within(90*time.Second, func() bool {
		n = len(inboxFiles(t, srv)[mtt.TypeCDSS]) - realtime
		return float64(n) >= 0.9*outage.Seconds()/2
	}) < 0 {
		t.Fatalf("%d real-time files after a %v outage at a 2 s interval: some were lost", n, outage)
	}
	// MQTT: the alarms of the excursion during the outage, and telemetry
	// sampled throughout it.
	if within(90*time.Second, func() bool {
		for _, a := range s.msgs.alarms(t) {
			if a.Sensor == "CH4-101" && a.Level == "cutoff" && a.State == "cleared" && a.Episode != nil && a.Episode.Max != nil && *a.Episode.Max == 1.8 {
				return true
			}
		}
		return false
	}) < 0 {
		t.Fatal("the cut-off during the outage never reached the broker")
	}
	var during int
	if within(90*time.Second, func() bool {
		during = 0
		for _, r := range s.msgs.readings(t, "CH4-101") {
			if r.TS > downAt.UnixMilli() && r.TS < backAt.UnixMilli() {
				during++
			}
		}
		return float64(during) >= 0.9*outage.Seconds()/0.2
	}) < 0 {
		t.Fatalf("%d CH4-101 readings sampled during the %v outage reached the broker (polled every 200 ms)", during, outage)
	}
}
