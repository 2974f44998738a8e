package app

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

// M1 at the agent level: the link to the broker silently drops every
// packet (proxy blackhole, no reset) while readings keep coming, and the
// agent is stopped (Run cancelled) during the outage. Run returns within
// its drain allowance (Options.DrainTimeout, 2 s) plus one PUBACK timeout
// plus a margin — no wait is chained beyond its own timeout; the readings
// not acknowledged stay in the bbolt file; after the link returns, a new
// agent on the same data_dir delivers every one of them (repeats allowed,
// loss not). Scaled: PUBACK timeout 1.5 s (default 10 s), keepalive
// 4.5 s (default 30 s, the 3:1 ratio kept), an outage of seconds instead
// of 90 s.
func TestCases_M1AgentStopOnDeadLink(t *testing.T) {
	const publishTimeout, drain, margin = 1500 * time.Millisecond, 2 * time.Second, time.Second
	bank := mbslave.NewBank()
	bank.SetHolding(1, 0, 40)
	addr := mbslavetest.StartTCP(t, bank)
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-m1a", "hazmon/v1/site-0001/gw-m1/telemetry")
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	dir := t.TempDir()
	yaml := fmt.Sprintf(`agent: {id: gw-m1, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://%s"], keepalive: 4500ms, publish_timeout: 1500ms, connect_timeout: 1s, batch_max: 5}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 300ms}
sensors:
  - {id: CH4-101, type: methane, bus: plc, slave: 1, table: holding, address: 0, scale: 0.01, unit: "%%CH4",
     interval: 100ms, range: [0, 4]}
`, dir, proxy.Addr(), addr)

	got := map[int64]bool{} // sample times received
	readAll := func(until time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.After(until)
		for !cond() {
			select {
			case m := <-sub:
				var tm contract.Telemetry
				if err := json.Unmarshal(m.Payload, &tm); err != nil {
					t.Fatal(err)
				}
				for _, raw := range tm.Readings {
					var r contract.Reading
					if err := json.Unmarshal(raw, &r); err != nil {
						t.Fatal(err)
					}
					got[r.TS] = true
				}
			case <-deadline:
				t.Fatalf("subscriber: condition not met within %v (%d readings)", until, len(got))
			}
		}
	}

	a, stop := runApp(t, loadConfig(t, yaml))
	readAll(30*time.Second, func() bool { return len(got) >= 10 })
	proxy.SetBlackhole(true)
	waitFor(t, 10*time.Second, "a publish in flight on the dead link", func() bool { return a.publisher().Link().InFlight > 0 })
	time.Sleep(time.Second) // more readings into the buffer, still within the PUBACK timeout
	if a.publisher().Link().InFlight == 0 {
		t.Fatal("nothing in flight at the stop: the case was not exercised")
	}
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if limit := drain + publishTimeout + margin; took > limit {
		t.Fatalf("agent stop on a dead link took %v, want within drain %v + PUBACK timeout %v + %v", took, drain, publishTimeout, margin)
	}

	// What is left in the file: every reading not yet at the subscriber.
	s, err := store.OpenReadOnly(filepath.Join(dir, BufferFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	left := map[int64]bool{}
	items, err := s.Pending(store.Telemetry, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		left[it.TS.UnixMilli()] = true
	}
	msgs, err := s.Outbox(store.Telemetry, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		var tm contract.Telemetry
		if err := json.Unmarshal(m.Payload, &tm); err != nil {
			t.Fatal(err)
		}
		for _, raw := range tm.Readings {
			var r contract.Reading
			_ = json.Unmarshal(raw, &r)
			left[r.TS] = true
		}
	}
	s.Close()
	if len(left) == 0 {
		t.Fatal("nothing left in the buffer after a stop on a dead link: readings were dropped as if acknowledged")
	}

	proxy.SetBlackhole(false)
	proxy.CutAll()
	runApp(t, loadConfig(t, yaml))
	readAll(60*time.Second, func() bool {
		for ts := range left {
			if !got[ts] {
				return false
			}
		}
		return true
	})
	t.Logf("stop on a dead link took %v; %d readings left in the file, all delivered after the link returned", took.Round(time.Millisecond), len(left))
}
