package publish

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// M4 (a): the network silently drops (no reset, nothing reaches the
// broker): the broker publishes the retained "offline" will within
// 1.5 × keepalive. Scaled: keepalive 2 s instead of the default 30 s, so
// the will is due 3 s after the last packet; the bound allows a further
// 3 s for a loaded machine (the property is "bounded by the keepalive",
// not "after the PUBACK timeout or never"). A subscriber that connects
// afterwards gets "offline" as a retained message. Every (re)connect
// publishes "online" again (retained): checked over two drops.
func TestCases_M4OfflineWillAndOnline(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-m4", "hazmon/v1/site-0001/gw-01/status")
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	s := openStore(t)
	const keepAlive = 2 * time.Second
	startPublisher(t, s, Options{Brokers: []string{"tcp://" + proxy.Addr()}, KeepAlive: keepAlive,
		ConnectTimeout: 2 * time.Second, PublishTimeout: 30 * time.Second})
	next := func(what string, d time.Duration) string {
		t.Helper()
		select {
		case m := <-sub:
			var st struct {
				State string `json:"state"`
			}
			if err := json.Unmarshal(m.Payload, &st); err != nil {
				t.Fatal(err)
			}
			return st.State
		case <-time.After(d):
			t.Fatalf("no status within %v (%s)", d, what)
			return ""
		}
	}
	if st := next("first online", wait); st != "online" {
		t.Fatalf("first status %q, want online", st)
	}
	for round := 1; round <= 2; round++ {
		proxy.SetBlackhole(true)
		dropped := time.Now()
		// Only the broker's keepalive check can notice: the PUBACK timeout
		// is 30 s and nothing is published.
		if st := next("LWT", keepAlive*3/2+3*time.Second); st != "offline" {
			t.Fatalf("round %d: status %q after the drop, want offline", round, st)
		}
		t.Logf("round %d: offline will %v after the drop (keepalive %v)", round, time.Since(dropped).Round(10*time.Millisecond), keepAlive)
		late := b.Subscribe(t, "late-m4-"+string(rune('0'+round)), "hazmon/v1/site-0001/gw-01/status")
		select {
		case m := <-late:
			if !m.Retained || !strings.Contains(string(m.Payload), `"state":"offline"`) {
				t.Fatalf("round %d: late subscriber got %s (retained %v), want retained offline", round, m.Payload, m.Retained)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: no retained status for a late subscriber", round)
		}
		proxy.SetBlackhole(false)
		proxy.CutAll()
		if st := next("online after reconnect", wait); st != "online" {
			t.Fatalf("round %d: status %q after the link returned, want online", round, st)
		}
	}
}
