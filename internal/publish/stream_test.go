package publish

import (
	"bytes"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// TestWithFaultCode: a buffered fault reading from before fault codes goes
// out with code "unknown" and validates; others are unchanged.
func TestWithFaultCode(t *testing.T) {
	old := []byte(`{"sensor":"S","type":"flow","ts":1,"value":null,"unit":"m","status":"fault","error":"timeout"}`)
	got := withFaultCode(old)
	if err := contract.Validate("reading", got); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	ok := []byte(`{"sensor":"S","type":"flow","ts":1,"value":1,"unit":"m","status":"normal"}`)
	if string(withFaultCode(ok)) != string(ok) {
		t.Fatal("a valid reading was changed")
	}
	coded := []byte(`{"sensor":"S","type":"flow","ts":1,"value":null,"unit":"m","status":"fault","error":"x","code":"range"}`)
	if string(withFaultCode(coded)) != string(coded) {
		t.Fatal("a coded fault was changed")
	}
}

// TestBuild_FreshReadingsJoinedGiveMarshalsBytes: with
// FreshReadingsCanonical, a v1 message of readings still in memory is
// joined by hand; its bytes are those of the checked path (Marshal), for
// fresh items as for items read back from the file.
func TestBuild_FreshReadingsJoinedGiveMarshalsBytes(t *testing.T) {
	mk := func(canonical bool) *Publisher {
		p, err := New(openStore(t), Options{Brokers: []string{"tcp://127.0.0.1:1"}, Site: "site-<1>", Agent: "gw-01", Logger: quiet,
			FreshReadingsCanonical: canonical})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := time.UnixMilli(1764403200000)
	var items []store.Item
	for i := range 50 {
		d := reading(i, now.Add(time.Duration(i)*time.Millisecond))
		if i%7 == 3 {
			d = contract.AppendReading(nil, contract.Reading{Sensor: "FT-1", Type: "flow", TS: 5, Unit: "m3/h", Status: "fault",
				Error: "timeout <1s> & more", Code: "timeout"})
		}
		items = append(items, store.Item{ID: uint64(100 + i), TS: now, Data: d, Fresh: true})
	}
	h := store.Head{Seq: 42, Epoch: 3}
	want, err := mk(false).build(store.Telemetry, 120)(h, items)
	if err != nil {
		t.Fatal(err)
	}
	joined := mk(true)
	got, err := joined.build(store.Telemetry, 120)(h, items)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("joined by hand:\n got %s\nwant %s\n(err %v)", got, want, err)
	}
	if err := contract.Validate("telemetry", got); err != nil {
		t.Fatalf("joined message does not validate: %v", err)
	}
	// Read back from the file, a record is checked even so.
	stale := append([]store.Item(nil), items...)
	stale[10] = store.Item{ID: 110, TS: now, Data: []byte(`{"sensor":"CH4-101","value":`)}
	if _, err := joined.build(store.Telemetry, 0)(h, stale); err == nil {
		t.Fatal("a malformed record read back from the file was joined into the message")
	}
}
