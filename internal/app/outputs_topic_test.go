package app

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/safety"
)

// Every field of the safety snapshot lands in the outputs message the
// schema describes: command and its reason ("pending" for a cut not yet
// reasoned), read-back (unknown until seen), error, latch, test, feed.
func TestOutputsPayload_FromTheSafetySnapshot(t *testing.T) {
	at := time.UnixMilli(1_764_403_200_000)
	snap := safety.Snapshot{Time: at, Outputs: []safety.OutputState{
		{Name: "breaker-3", Cut: true, Why: "rules", ChangedAt: at.Add(-time.Second), Confirmed: true, Known: true, Energised: false,
			Feed: "FEED-3", FeedValid: true, FeedPresent: false},
		{Name: "fan-1", Cut: false, ChangedAt: at, Confirmed: false, LastError: "coil write: timeout",
			Feed: "FEED-1"},
		{Name: "pump-2", Cut: true, Known: true, Energised: true, Latched: "found cut while commanded on",
			Feed: "FEED-2", FeedValid: true, FeedPresent: true, FeedAbnormal: true, FeedReason: "power present while cut"},
		{Name: "siren", Cut: true, Why: "output test", Testing: true, Confirmed: true, Known: true},
	}}
	msg := outputsPayload("gw-01", "site-0001", snap)
	b, err := contract.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := contract.Validate(contract.KindOutputs, b); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	want := []contract.Output{
		{Name: "breaker-3", Commanded: "cut", Why: "rules", ChangedAt: at.Add(-time.Second).UnixMilli(), Confirmed: true, ReadBack: "cut",
			Feed: &contract.OutputFeed{Input: "FEED-3", State: "absent"}},
		{Name: "fan-1", Commanded: "on", ChangedAt: at.UnixMilli(), ReadBack: "unknown", Error: "coil write: timeout",
			Feed: &contract.OutputFeed{Input: "FEED-1", State: "unknown"}},
		{Name: "pump-2", Commanded: "cut", Why: "pending", ReadBack: "on", Latched: "found cut while commanded on",
			Feed: &contract.OutputFeed{Input: "FEED-2", State: "present", Abnormal: true, Reason: "power present while cut"}},
		{Name: "siren", Commanded: "cut", Why: "output test", Confirmed: true, ReadBack: "cut", Testing: true},
	}
	if msg.TS != at.UnixMilli() || !sameOutputs(msg.Outputs, want) {
		got, _ := json.Marshal(msg.Outputs)
		exp, _ := json.Marshal(want)
		t.Fatalf("outputs\n got %s\nwant %s", got, exp)
	}
	changed := append([]contract.Output(nil), want...)
	changed[0].Feed = &contract.OutputFeed{Input: "FEED-3", State: "present"}
	if sameOutputs(want, changed) {
		t.Fatal("a feed change is not a change")
	}
}

// Through a running agent and a real broker: retainOutputs publishes the
// retained outputs message (cut while methane is above the cut-off, on
// once it is below the restore value),
// and an unchanged set is not sent again.
func TestApp_RetainOutputsPublishesChanges(t *testing.T) {
	bank := mbslave.NewBank()
	bank.SetHolding(1, 0, 160) // 1.60 %CH4: above the cut-off, the breaker stays cut
	addr := mbslavetest.StartTCP(t, bank)
	broker := brokertest.Start(t)
	sub := broker.Subscribe(t, "platform-outputs", "hazmon/v1/site-0001/gw-1/outputs")
	cfg := loadConfig(t, fmt.Sprintf(`agent: {id: gw-1, site: site-0001, data_dir: %s}
mqtt: {brokers: [%q], keepalive: 2s, connect_timeout: 1s}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 300ms}
outputs:
  - {name: breaker-3, modbus: {bus: plc, slave: 1, coil: 100}}
sensors:
  - {id: CH4-101, type: methane, bus: plc, slave: 1, table: holding, address: 0, scale: 0.01, unit: "%%CH4",
     interval: 100ms, range: [0, 4], location: coal_face, cut_outputs: [breaker-3]}
`, t.TempDir(), broker.URL, addr))
	a, _ := runApp(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	next := func(what string) contract.Output {
		t.Helper()
		select {
		case m := <-sub:
			if err := contract.Validate(contract.KindOutputs, m.Payload); err != nil {
				t.Fatalf("%s: %v\n%s", what, err, m.Payload)
			}
			var o contract.Outputs
			if err := json.Unmarshal(m.Payload, &o); err != nil || len(o.Outputs) != 1 || o.Agent != "gw-1" {
				t.Fatalf("%s: %s", what, m.Payload)
			}
			return o.Outputs[0]
		case <-time.After(20 * time.Second):
			t.Fatalf("no outputs message (%s)", what)
			return contract.Output{}
		}
	}
	if sent, err := a.retainOutputs(ctx); err != nil || !sent {
		t.Fatalf("first retainOutputs: sent %v, err %v", sent, err)
	}
	if o := next("first"); o.Name != "breaker-3" || o.Commanded != contract.OutputCut || o.Why == "" {
		t.Fatalf("first outputs %+v, want breaker-3 cut with a reason", o)
	}
	bank.SetHolding(1, 0, 50) // 0.50 %CH4: power may be restored
	waitFor(t, 10*time.Second, "breaker energised and confirmed", func() bool {
		snap, err := a.core.Snapshot(ctx)
		return err == nil && len(snap.Outputs) == 1 && !snap.Outputs[0].Cut && snap.Outputs[0].Confirmed
	})
	if sent, err := a.retainOutputs(ctx); err != nil || !sent {
		t.Fatalf("retainOutputs after the change: sent %v, err %v", sent, err)
	}
	if o := next("energised"); o.Commanded != contract.OutputOn || o.Why != "" || !o.Confirmed {
		t.Fatalf("outputs after energising %+v, want on and confirmed", o)
	}
	if sent, err := a.retainOutputs(ctx); err != nil || sent {
		t.Fatalf("retainOutputs with nothing changed: sent %v, err %v, want nothing sent", sent, err)
	}
}
