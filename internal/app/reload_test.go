package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/store"
)

const fieldYAML = `agent: {id: gw-r, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://127.0.0.1:1"], connect_timeout: 1s}   # no broker: everything stays buffered
control: {socket: %s}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 300ms}
outputs:
  - {name: breaker-3, modbus: {bus: plc, slave: 1, coil: 100}, feed: FEED-3, feed_timeout: 500ms}
sensors:
  - {id: CH4-101, type: methane, bus: plc, slave: 1, table: holding, address: 0, scale: 0.01, unit: "%%CH4",
     interval: 100ms, range: [0, 4], location: coal_face, cut_outputs: [breaker-3]}
  - {id: FEED-3, type: digital, bus: plc, slave: 1, table: discrete, address: 3, interval: 100ms}
`

// fieldSite starts a slave whose feed contact follows the breaker coil, as
// a real feed would, and an agent on a config file in a temp dir.
func fieldSite(t *testing.T, extra string) (a *App, bank *mbslave.Bank, path string, stop func() error) {
	t.Helper()
	bank = mbslave.NewBank()
	bank.SetHolding(1, 0, 40) // 0.40 %CH4
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { // feed contact: power present while the breaker coil is energised
		for ctx.Err() == nil {
			bank.SetDiscrete(1, 3, bank.Coil(1, 100))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	addr := mbslavetest.StartTCP(t, bank)
	dir := t.TempDir()
	path = filepath.Join(dir, "hazmon.yaml")
	body := fmt.Sprintf(fieldYAML, dir, filepath.Join(dir, "h.sock"), addr) + extra
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, stop = runAppFile(t, l.Config, path)
	waitFor(t, 10*time.Second, "breaker energised", func() bool { return bank.Coil(1, 100) })
	return a, bank, path, stop
}

func lastReading(a *App, sensor string) (reading.Reading, bool) {
	a.ctl.mu.Lock()
	defer a.ctl.mu.Unlock()
	r, ok := a.ctl.last[sensor]
	return r, ok
}

func TestApp_Reload(t *testing.T) {
	a, bank, path, _ := fieldSite(t, "")
	orig, _ := os.ReadFile(path)
	ctx := context.Background()
	pending := func() int {
		st, err := a.buffer().Stats()
		if err != nil {
			t.Fatal(err)
		}
		p, o := st.Depth()
		return p + o
	}

	t.Run("bad file keeps the running config", func(t *testing.T) {
		bad := strings.Replace(string(orig), "interval: 100ms, range", "interval: soon, range", 1)
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		before := a.Config()
		_, _, err := a.Reload(ctx)
		if err == nil || !strings.Contains(err.Error(), `hazmon.yaml:10: sensors[0].interval: "soon" is not a duration`) {
			t.Fatalf("Reload = %v", err)
		}
		if a.Config() != before {
			t.Fatal("config replaced by a bad file")
		}
		n := pending()
		waitFor(t, 5*time.Second, "polling goes on", func() bool { return pending() > n })
		if !bank.Coil(1, 100) {
			t.Fatal("output dropped by a rejected reload")
		}
	})

	t.Run("unchanged file is a no-op", func(t *testing.T) {
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		before := a.Config()
		for range 5 {
			if _, _, err := a.Reload(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if a.Config() != before {
			t.Fatal("unchanged config rebuilt the graph")
		}
	})

	t.Run("mqtt change needs a restart", func(t *testing.T) {
		changed := strings.Replace(string(orig), "connect_timeout: 1s", "connect_timeout: 2s", 1)
		if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Reload(ctx); !errors.Is(err, ErrRestartNeeded) {
			t.Fatalf("Reload = %v, want ErrRestartNeeded", err)
		}
	})

	t.Run("new sensor applies, buffer kept", func(t *testing.T) {
		bank.SetHolding(1, 5, 7)
		changed := string(orig) + `  - {id: CO-101, type: co, bus: plc, slave: 1, table: holding, address: 5, unit: ppm, interval: 100ms, range: [0, 1000]}
`
		if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		n := pending()
		// The breaker must stay energised through the hand-over: no coil write of 0.
		writes := len(bank.CoilWrites())
		applied, _, err := a.Reload(ctx)
		if err != nil || !applied {
			t.Fatalf("Reload = %v, %v", applied, err)
		}
		if got := len(a.Config().Sensors); got != 3 {
			t.Fatalf("sensors after reload = %d", got)
		}
		waitFor(t, 15*time.Second, "CO-101 read after reload", func() bool {
			r, ok := lastReading(a, "CO-101")
			return ok && r.Valid() && r.Value == 7
		})
		if pending() < n {
			t.Fatalf("buffer shrank across reload: %d → %d", n, pending())
		}
		for _, w := range bank.CoilWrites()[writes:] {
			if w.Addr == 100 && !w.On {
				t.Fatal("the breaker was cut during a reload that did not change its rules")
			}
		}
		// The new graph drives it: methane at the cut-off cuts it.
		bank.SetHolding(1, 0, 150)
		waitFor(t, 15*time.Second, "cut by the new graph", func() bool { return !bank.Coil(1, 100) })
		bank.SetHolding(1, 0, 40)
		waitFor(t, 15*time.Second, "restored by the new graph", func() bool { return bank.Coil(1, 100) })
	})
}

func TestApp_CalibrateAndOutputTest(t *testing.T) {
	a, bank, _, _ := fieldSite(t, "")
	b := (*controlBackend)(a)
	ctx := context.Background()

	if _, err := b.Calibrate(ctx, "CH4-101", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "status calibrating", func() bool {
		r, _ := lastReading(a, "CH4-101")
		return r.Status == reading.StatusCalibrating
	})
	// The cut-off test is part of calibration: actuation still happens.
	bank.SetHolding(1, 0, 160)
	waitFor(t, 5*time.Second, "cut during calibration", func() bool { return !bank.Coil(1, 100) })
	bank.SetHolding(1, 0, 40)
	waitFor(t, 5*time.Second, "restored", func() bool { return bank.Coil(1, 100) })
	alarms := bufferedAlarms(t, a)
	if !strings.Contains(alarms, `"level":"cutoff","direction":"high","state":"raised"`) || !strings.Contains(alarms, `"calibration":true`) {
		t.Fatalf("calibration alarms = %s", alarms)
	}
	if _, err := b.Calibrate(ctx, "CH4-101", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "calibration ended", func() bool {
		r, _ := lastReading(a, "CH4-101")
		return r.Status == reading.StatusNormal
	})

	res, err := b.OutputTest(ctx, "breaker-3", 700*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "cut" || res.FeedOK == nil || !*res.FeedOK || res.Final != "on" {
		t.Fatalf("output test = %+v", res)
	}
	waitFor(t, 5*time.Second, "restored after the test", func() bool { return bank.Coil(1, 100) })

	// A test never restores power the rules keep cut.
	bank.SetHolding(1, 0, 200)
	waitFor(t, 5*time.Second, "cut at 2.00 %CH4", func() bool { return !bank.Coil(1, 100) })
	if _, err := b.OutputTest(ctx, "breaker-3", time.Second); !errors.Is(err, control.ErrInvalid) {
		t.Fatalf("output test of a cut output = %v, want ErrInvalid", err)
	}
}

// bufferedAlarms returns every alarm record still in the buffer, joined.
func bufferedAlarms(t *testing.T, a *App) string {
	t.Helper()
	items, err := a.buffer().Pending(store.Alarm, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, it := range items {
		b.Write(it.Data)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestApp_ReloadKeepsActiveAlarms: an alarm raised before a reload is still
// listed afterwards, and its cleared message carries the raised one's
// alarm_id; an alarm whose rule the new file removes is cleared at once.
// A removed sensor leaves the retained current snapshot.
func TestApp_ReloadKeepsActiveAlarms(t *testing.T) {
	a, bank, path, _ := fieldSite(t, `  - {id: CO-101, type: co, bus: plc, slave: 1, table: holding, address: 5, unit: ppm, interval: 100ms, range: [0, 1000]}
`)
	ctx := context.Background()
	bank.SetHolding(1, 5, 30)  // CO 30 ppm: default alarm ≥ 24
	bank.SetHolding(1, 0, 160) // 1.60 %CH4: alarm and cut-off
	// The gas sensors' alarms only: on a loaded host the breaker's feed
	// check may time out meanwhile (FEED-3/fault), which the reload
	// neither raises nor clears.
	isGas := func(sensor string) bool { return sensor == "CH4-101" || sensor == "CO-101" }
	gas := func() (n int) {
		for _, al := range a.core.ActiveAlarms() {
			if isGas(al.Sensor) {
				n++
			}
		}
		return n
	}
	waitFor(t, 5*time.Second, "alarms raised", func() bool { return gas() == 3 })
	raisedIDs := map[string]string{}
	for _, al := range alarmsOf(a) {
		if isGas(al.Sensor) {
			raisedIDs[al.Sensor+"/"+al.Level] = al.AlarmID
		}
	}

	orig, _ := os.ReadFile(path)
	// Drop CO-101 and add a harmless sensor: CH4's alarms stay, CO's is cleared.
	body := strings.Replace(string(orig), "  - {id: CO-101, type: co, bus: plc, slave: 1, table: holding, address: 5, unit: ppm, interval: 100ms, range: [0, 1000]}\n",
		"  - {id: T-1, type: temperature, bus: plc, slave: 1, table: holding, address: 6, unit: degC, interval: 100ms, range: [0, 100]}\n", 1)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if applied, _, err := a.Reload(ctx); err != nil || !applied {
		t.Fatalf("Reload = %v, %v", applied, err)
	}
	var active []string
	for _, al := range alarmsOf(a) {
		if isGas(al.Sensor) {
			active = append(active, al.Sensor+"/"+al.Level)
		}
	}
	slices.Sort(active)
	if strings.Join(active, " ") != "CH4-101/alarm CH4-101/cutoff" {
		t.Fatalf("active alarms after reload: %v", active)
	}
	bank.SetHolding(1, 0, 40)
	waitFor(t, 5*time.Second, "alarms cleared", func() bool { return gas() == 0 })
	// The cleared records are committed by the buffer's writer after the
	// core cleared the alarms: wait for them, do not race the commit.
	cleared := map[string]string{}
	waitFor(t, 5*time.Second, "cleared alarms committed", func() bool {
		clear(cleared)
		for _, raw := range strings.Split(strings.TrimSpace(bufferedAlarms(t, a)), "\n") {
			var al contract.Alarm
			if err := json.Unmarshal([]byte(raw), &al); err != nil {
				t.Fatal(err)
			}
			if al.State == "cleared" {
				cleared[al.Sensor+"/"+al.Level] = al.AlarmID
			}
		}
		return len(cleared) >= len(raisedIDs)
	})
	for k, id := range raisedIDs {
		if cleared[k] != id {
			t.Errorf("%s: raised as %s, cleared as %q", k, id, cleared[k])
		}
	}
	if slices.Contains(a.publisher().Current(), "CO-101") {
		t.Errorf("removed sensor CO-101 still in the current snapshot %v", a.publisher().Current())
	}
}

// TestApp_ReloadMovedOutputAndShutdown: an output the new file moves to
// another coil is cut on its old coil (never left energised without an
// owner), and a reload after shutdown began is refused.
func TestApp_ReloadMovedOutputAndShutdown(t *testing.T) {
	a, bank, path, stop := fieldSite(t, "")
	orig, _ := os.ReadFile(path)
	moved := strings.Replace(string(orig), "coil: 100}", "coil: 101}", 1)
	if err := os.WriteFile(path, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	if applied, _, err := a.Reload(context.Background()); err != nil || !applied {
		t.Fatalf("Reload = %v, %v", applied, err)
	}
	if bank.Coil(1, 100) {
		t.Fatal("the old coil 100 was left energised by the reload")
	}
	waitFor(t, 5*time.Second, "the new coil 101 energised by the new graph", func() bool { return bank.Coil(1, 101) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Reload(context.Background()); err == nil {
		t.Fatal("reload after shutdown accepted")
	}
	if bank.Coil(1, 100) || bank.Coil(1, 101) {
		t.Fatal("an output is energised after shutdown")
	}
}

// alarmsOf returns the agent's active alarms in their contract form.
func alarmsOf(a *App) []contract.Alarm {
	var out []contract.Alarm
	for _, al := range a.core.ActiveAlarms() {
		out = append(out, alarmPayload(al))
	}
	return out
}
