package publish

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// statusReader reads the status topic, validating every payload.
type statusReader struct {
	t  *testing.T
	ch <-chan brokertest.Message
}

func (r statusReader) next(what string) (contract.Status, brokertest.Message) {
	r.t.Helper()
	select {
	case m := <-r.ch:
		if err := contract.Validate(contract.KindStatus, m.Payload); err != nil {
			r.t.Fatalf("%s: %v\n%s", what, err, m.Payload)
		}
		var s contract.Status
		if err := json.Unmarshal(m.Payload, &s); err != nil {
			r.t.Fatal(err)
		}
		return s, m
	case <-time.After(wait):
		r.t.Fatalf("no status within %v (%s)", wait, what)
		return contract.Status{}, brokertest.Message{}
	}
}

// The retained status carries the agent's state: online, then degraded
// with its reasons, then online again, each with the time of the change
// (not of a connect), the boot id, version, config hash and sensors.
// Setting the same state again publishes nothing; a reconnect republishes
// the same ts; the will says offline with the boot id and no ts; a reload
// (SetConfig, SetSensors) republishes at once with the new sensors and
// hash, the ts unchanged; a clean stop says offline with its own time.
func TestPublisher_StatusCarriesStateChangesAndConfig(t *testing.T) {
	b := brokertest.Start(t)
	st := statusReader{t, b.Subscribe(t, "bureau-status", "hazmon/v1/site-0001/gw-01/status")}
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	s := openStore(t)
	hash := contract.ConfigHash([]byte("first"))
	created := time.Now()
	p, stop := startPublisher(t, s, Options{Brokers: []string{"tcp://" + proxy.Addr()}, ConfigHash: hash,
		KeepAlive: 2 * time.Second, ConnectTimeout: 2 * time.Second, PublishTimeout: 2 * time.Second})

	first, _ := st.next("first online")
	if first.State != contract.StateOnline || first.BootID != BootID() || first.Version != "test" ||
		first.ConfigHash != hash || !slices.Equal(first.Sensors, []string{"CH4-101"}) || first.Will {
		t.Fatalf("first status %+v", first)
	}
	if first.TS < created.UnixMilli()-1 || first.TS > time.Now().UnixMilli() {
		t.Errorf("first ts %d outside the publisher's start %d..now", first.TS, created.UnixMilli())
	}

	before := time.Now()
	if err := p.SetState(contract.StateDegraded, []string{"buffer_fault: read-only file system"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	deg, _ := st.next("degraded")
	if deg.State != contract.StateDegraded || !slices.Equal(deg.Reasons, []string{"buffer_fault: read-only file system"}) ||
		deg.TS < before.UnixMilli() || deg.TS > after.UnixMilli() {
		t.Fatalf("degraded status %+v, want the reason and a ts within %d..%d", deg, before.UnixMilli(), after.UnixMilli())
	}
	if state, reasons, since := p.State(); state != contract.StateDegraded || len(reasons) != 1 || since.UnixMilli() != deg.TS {
		t.Errorf("State() = %s %v %v", state, reasons, since)
	}

	// A reconnect: the will (offline, boot id, no ts), then the same
	// degraded status with the same ts, although the connect is later.
	proxy.CutAll()
	will, wm := st.next("will")
	if !will.Will || will.State != contract.StateOffline || will.TS != 0 || will.BootID != BootID() {
		t.Fatalf("will %s, want offline, will, the boot id, no ts", wm.Payload)
	}
	again, _ := st.next("status after the reconnect")
	if again.State != contract.StateDegraded || again.TS != deg.TS {
		t.Fatalf("after the reconnect: %+v, want degraded with the ts of the change %d", again, deg.TS)
	}

	// The same state again is no change; the next message is the next change.
	if err := p.SetState(contract.StateDegraded, []string{"buffer_fault: read-only file system"}); err != nil {
		t.Fatal(err)
	}
	if err := p.SetState(contract.StateOnline, nil); err != nil {
		t.Fatal(err)
	}
	on, _ := st.next("online again")
	if on.State != contract.StateOnline || len(on.Reasons) != 0 || on.TS < deg.TS {
		t.Fatalf("after the same degraded and then online: %+v, want online (a repeat of degraded is no change)", on)
	}

	// A reload: republished at once with the new sensors and hash.
	hash2 := contract.ConfigHash([]byte("second"))
	p.SetConfig(hash2, []string{"CH4-101", "CO-102"})
	rl, _ := st.next("after SetConfig")
	if rl.ConfigHash != hash2 || !slices.Equal(rl.Sensors, []string{"CH4-101", "CO-102"}) || rl.TS != on.TS || rl.State != contract.StateOnline {
		t.Fatalf("after SetConfig: %+v, want the new hash and sensors, ts %d kept", rl, on.TS)
	}
	p.SetSensors([]string{"CH4-101", "CO-102", "O2-103"})
	rs, _ := st.next("after SetSensors")
	if rs.ConfigHash != hash2 || len(rs.Sensors) != 3 {
		t.Fatalf("after SetSensors: %+v, want 3 sensors and the hash kept", rs)
	}

	stopAt := time.Now()
	stop()
	off, om := st.next("offline at stop")
	if off.State != contract.StateOffline || off.Will || off.TS < stopAt.UnixMilli() || off.TS > time.Now().UnixMilli() {
		t.Fatalf("at stop: %s, want the agent's own offline with the time of the stop", om.Payload)
	}
}

// SetState refuses what the status cannot say, changing nothing.
func TestPublisher_SetStateRefusesWhatStatusCannotSay(t *testing.T) {
	p, err := New(openStore(t), Options{Brokers: []string{"tcp://127.0.0.1:1"}, Site: "s", Agent: "a", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	_, _, since := p.State()
	for _, c := range []struct {
		state   string
		reasons []string
	}{
		{contract.StateOffline, nil},
		{"sleeping", nil},
		{contract.StateDegraded, nil},
		{contract.StateDegraded, []string{"disk stalled", ""}},
		{contract.StateOnline, []string{"why"}},
	} {
		if err := p.SetState(c.state, c.reasons); err == nil {
			t.Errorf("SetState(%q, %q) accepted", c.state, c.reasons)
		}
	}
	if state, reasons, s := p.State(); state != contract.StateOnline || reasons != nil || !s.Equal(since) {
		t.Errorf("state after refused calls: %s %v %v, want online since %v", state, reasons, s, since)
	}
	if _, err := New(openStore(t), Options{Brokers: []string{"tcp://127.0.0.1:1"}, Site: "s", Agent: "a", BootID: "not-hex"}); err == nil {
		t.Error("a boot id that is not 32 hex digits accepted")
	}
	if id := BootID(); len(id) != 32 || id != BootID() {
		t.Errorf("BootID() = %q, want 32 hex digits, the same on every call", id)
	}
}
