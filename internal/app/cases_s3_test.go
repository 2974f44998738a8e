package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/store"
)

// S3: config pushes do not wipe the buffer. 1000 records are buffered (a
// backlog left in the real bbolt file by an earlier run, sensor CH4-OLD,
// which the running config no longer polls, so its count is exact while
// the live sensor keeps adding readings); the agent runs with no broker
// (every connect fails: it keeps reconnecting) and receives five reloads
// of its unchanged config file. After each reload all 1000 CH4-OLD records
// are still in the file and the telemetry backlog never shrank. Not
// scaled: the case's own numbers.
func TestCases_S3ReloadsKeepBuffer(t *testing.T) {
	const backlog = 1000
	bank := mbslave.NewBank()
	bank.SetHolding(1, 0, 40) // 0.40 %CH4
	addr := mbslavetest.StartTCP(t, bank)
	dir := t.TempDir()

	s, err := store.Open(filepath.Join(dir, BufferFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := range backlog {
		v := float64(i%100) / 100
		ts := base.Add(time.Duration(i) * time.Second)
		data, err := contract.Marshal(contract.Reading{Sensor: "CH4-OLD", Type: "methane", TS: ts.UnixMilli(), Value: &v, Unit: "%CH4", Status: "normal"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Append(context.Background(), store.Telemetry, ts, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "hazmon.yaml")
	body := fmt.Sprintf(`agent: {id: gw-s3, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://127.0.0.1:%d"], connect_timeout: 300ms}   # no broker: it keeps reconnecting
control: {socket: %s}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 300ms}
sensors:
  - {id: CH4-101, type: methane, bus: plc, slave: 1, table: holding, address: 0, scale: 0.01, unit: "%%CH4",
     interval: 100ms, range: [0, 4]}
`, dir, freePort(t), filepath.Join(dir, "h.sock"), addr)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := runAppFile(t, l.Config, path)

	// counts returns the CH4-OLD records and all telemetry records in the
	// buffer, pending or formed into an outbox message.
	counts := func() (old, all int) {
		t.Helper()
		items, err := a.buffer().Pending(store.Telemetry, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			all++
			if strings.Contains(string(it.Data), `"sensor":"CH4-OLD"`) {
				old++
			}
		}
		msgs, err := a.buffer().Outbox(store.Telemetry, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			all += m.Items
			old += strings.Count(string(m.Payload), `"sensor":"CH4-OLD"`)
		}
		return old, all
	}
	waitFor(t, 10*time.Second, "the agent polling and trying the broker", func() bool {
		_, ok := lastReading(a, "CH4-101")
		return ok && a.publisher().Link().LastError != ""
	})
	old, all := counts()
	if old != backlog {
		t.Fatalf("at start: %d CH4-OLD records buffered, want %d", old, backlog)
	}
	ctx := context.Background()
	for i := 1; i <= 5; i++ {
		changed, _, err := a.Reload(ctx)
		if err != nil || changed {
			t.Fatalf("reload %d of the unchanged file: changed %v, err %v; want a no-op", i, changed, err)
		}
		time.Sleep(300 * time.Millisecond) // a reconnect attempt (connect timeout 300 ms) between pushes
		o, n := counts()
		if o != backlog {
			t.Fatalf("reload %d: %d CH4-OLD records buffered, want %d", i, o, backlog)
		}
		if n < all {
			t.Fatalf("reload %d: telemetry backlog shrank from %d to %d records", i, all, n)
		}
		all = n
	}
	if st, err := a.buffer().Stats(); err != nil || st.Streams[store.Telemetry].Evicted != 0 {
		t.Fatalf("stats %+v, err %v: nothing may be evicted", st, err)
	}
}
