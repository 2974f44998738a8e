package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

var quiet = slog.New(slog.DiscardHandler)

const wait = 60 * time.Second // generous: 2 shared cores

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "buffer.db"), store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func reading(i int, ts time.Time) []byte {
	v := float64(i) / 100
	b, err := contract.Marshal(contract.Reading{Sensor: "CH4-101", Type: "methane", TS: ts.UnixMilli(), Value: &v, Unit: "%CH4", Status: "normal"})
	if err != nil {
		panic(err)
	}
	return b
}

func appendReadings(t *testing.T, s *store.Store, from, n int, ts func(int) time.Time) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Append(context.Background(), store.Telemetry, ts(i), reading(i, ts(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// startPublisher runs a Publisher until the test ends; stop cancels it and
// waits for Run to return.
func startPublisher(t *testing.T, s *store.Store, o Options) (p *Publisher, stop func()) {
	t.Helper()
	o.Site, o.Agent, o.Version, o.Sensors = "site-0001", "gw-01", "test", []string{"CH4-101"}
	o.Logger = quiet
	if o.BackoffMin == 0 {
		o.BackoffMin, o.BackoffMax = 100*time.Millisecond, 500*time.Millisecond
	}
	p, err := New(s, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(wait):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// checker follows what a subscriber receives and enforces the contract:
// every payload is schema-valid; per stream, a seq lower than the highest
// seen must be a repeat of one already seen (M2).
type checker struct {
	t        *testing.T
	maxSeq   map[string]uint64
	seen     map[string]map[uint64]bool
	readings map[float64]int64 // value → ts
	order    []float64         // first-arrival order of reading values
	statuses []string
	alarms   []contract.Alarm
}

func newChecker(t *testing.T) *checker {
	return &checker{t: t, maxSeq: map[string]uint64{}, seen: map[string]map[uint64]bool{}, readings: map[float64]int64{}}
}

func (c *checker) add(m brokertest.Message) {
	c.t.Helper()
	kind := m.Topic[strings.LastIndex(m.Topic, "/")+1:]
	if err := contract.Validate(kind, m.Payload); err != nil {
		c.t.Fatalf("%s: %v\n%s", m.Topic, err, m.Payload)
	}
	var hdr struct {
		Seq      uint64             `json:"seq"`
		State    string             `json:"state"`
		Readings []contract.Reading `json:"readings"`
	}
	if err := json.Unmarshal(m.Payload, &hdr); err != nil {
		c.t.Fatal(err)
	}
	switch kind {
	case contract.KindStatus:
		c.statuses = append(c.statuses, hdr.State)
		return
	case contract.KindCurrent:
		return
	case contract.KindAlarm:
		var a contract.Alarm
		json.Unmarshal(m.Payload, &a)
		c.alarms = append(c.alarms, a)
	}
	if c.seen[kind] == nil {
		c.seen[kind] = map[uint64]bool{}
	}
	if hdr.Seq < c.maxSeq[kind] && !c.seen[kind][hdr.Seq] {
		c.t.Fatalf("%s: new seq %d after seq %d (M2)", kind, hdr.Seq, c.maxSeq[kind])
	}
	c.seen[kind][hdr.Seq] = true
	c.maxSeq[kind] = max(c.maxSeq[kind], hdr.Seq)
	for _, r := range hdr.Readings {
		if _, dup := c.readings[*r.Value]; !dup {
			c.order = append(c.order, *r.Value)
		}
		c.readings[*r.Value] = r.TS
	}
}

// until reads messages until cond holds or the wait ends.
func (c *checker) until(ch <-chan brokertest.Message, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.After(wait)
	for !cond() {
		select {
		case m := <-ch:
			c.add(m)
		case <-deadline:
			c.t.Fatalf("timed out waiting for %s (statuses %v, %d readings, max seq %v)", what, c.statuses, len(c.readings), c.maxSeq)
		}
	}
}

func (c *checker) checkReadings(n int, ts func(int) time.Time) {
	c.t.Helper()
	if len(c.order) != n {
		c.t.Fatalf("got %d distinct readings, want %d", len(c.order), n)
	}
	for i, v := range c.order {
		if want := float64(i) / 100; v != want {
			c.t.Fatalf("reading #%d = %v, want %v (out of order)", i, v, want)
		}
		if got := c.readings[v]; got != ts(i).UnixMilli() {
			c.t.Fatalf("reading #%d ts = %d, want original %d", i, got, ts(i).UnixMilli())
		}
	}
}

func lastIs(s []string, v string) bool { return len(s) > 0 && s[len(s)-1] == v }

func TestPublisher_DrainsInOrderWithStatus(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-1", "hazmon/v1/site-0001/gw-01/#")
	s := openStore(t)
	base := time.Now().Add(-time.Hour)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	appendReadings(t, s, 0, 450, ts)
	for i, st := range []string{"raised", "cleared"} {
		v, lim := 1.52, 1.5
		a, _ := contract.Marshal(contract.Alarm{AlarmID: fmt.Sprintf("CH4-101/cutoff/%d", ts(i).UnixMilli()), Sensor: "CH4-101", Level: "cutoff", State: st, TS: ts(i).UnixMilli(), Value: &v, Limit: &lim, Outputs: []string{"breaker-3"}})
		if err := s.Append(context.Background(), store.Alarm, ts(i), a); err != nil {
			t.Fatal(err)
		}
	}
	p, stop := startPublisher(t, s, Options{Brokers: []string{b.URL}})
	c := newChecker(t)
	c.until(sub, "450 readings", func() bool { return len(c.order) == 450 && len(c.alarms) == 2 })
	c.checkReadings(450, ts)
	if c.maxSeq["telemetry"] != 3 { // 200 + 200 + 50
		t.Errorf("telemetry max seq = %d, want 3", c.maxSeq["telemetry"])
	}
	if c.alarms[0].Seq != 1 || c.alarms[1].Seq != 2 || c.alarms[0].State != "raised" || c.alarms[0].Agent != "gw-01" {
		t.Errorf("alarms = %+v", c.alarms)
	}
	if !lastIs(c.statuses, "online") {
		t.Errorf("statuses = %v, want online", c.statuses)
	}
	if l := p.Link(); !l.Connected || l.Broker != b.URL {
		t.Errorf("link = %+v", l)
	}
	// Live data goes out while connected.
	now := func(i int) time.Time { return ts(i) } // same clock as above
	appendReadings(t, s, 450, 5, now)
	c.until(sub, "live readings", func() bool { return len(c.order) == 455 })
	p.UpdateCurrent(contract.Reading{Sensor: "CH4-101", Type: "methane", TS: 1, Value: new(float64), Unit: "%CH4", Status: "normal"})
	stop()
	c.until(sub, "offline status", func() bool { return lastIs(c.statuses, "offline") })
	st, _ := s.Stats()
	if pend, out := st.Depth(); pend != 0 || out != 0 {
		t.Fatalf("buffer not drained after PUBACKs: pending %d outbox %d", pend, out)
	}
}

func TestPublisher_BrokerOutageResendsInOrder(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-2", "hazmon/v1/site-0001/gw-01/#")
	s := openStore(t)
	start := time.Now()
	ts := func(i int) time.Time { return start.Add(time.Duration(i) * 10 * time.Millisecond) }
	startPublisher(t, s, Options{Brokers: []string{b.URL}, ConnectTimeout: 2 * time.Second, PublishTimeout: 2 * time.Second, BatchMax: 7})
	c := newChecker(t)
	appendReadings(t, s, 0, 50, ts)
	c.until(sub, "first 50", func() bool { return len(c.order) >= 50 })
	b.Stop()
	appendReadings(t, s, 50, 100, ts) // buffered during the outage
	time.Sleep(time.Second)
	b.Start()
	appendReadings(t, s, 150, 50, ts)
	c.until(sub, "all 200 readings", func() bool { return len(c.order) == 200 })
	c.checkReadings(200, ts)
	c.until(sub, "online again", func() bool {
		n := 0
		for _, st := range c.statuses {
			if st == "online" {
				n++
			}
		}
		return n >= 2
	})
}

func TestPublisher_LWTOnCutAndDeadLink(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-3", "hazmon/v1/site-0001/gw-01/#")
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	s := openStore(t)
	base := time.Now()
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	p, _ := startPublisher(t, s, Options{Brokers: []string{"tcp://" + proxy.Addr()}, KeepAlive: 2 * time.Second, ConnectTimeout: 2 * time.Second, PublishTimeout: 2 * time.Second})
	c := newChecker(t)
	c.until(sub, "online", func() bool { return lastIs(c.statuses, "online") })

	// M4a: the network drops; the broker publishes the retained LWT.
	proxy.CutAll()
	c.until(sub, "LWT offline", func() bool { return lastIs(c.statuses, "offline") })
	c.until(sub, "online after reconnect", func() bool { return lastIs(c.statuses, "online") })

	// M1: #1 acked; the link silently drops traffic; #2, #3 stay buffered
	// until a PUBACK on a live session, then arrive.
	appendReadings(t, s, 0, 1, ts)
	c.until(sub, "#1", func() bool { return len(c.order) == 1 })
	proxy.SetBlackhole(true)
	appendReadings(t, s, 1, 2, ts)
	c.until(sub, "LWT on the dead link", func() bool { return lastIs(c.statuses, "offline") })
	deadline := time.Now().Add(wait)
	for p.Link().Connected { // the PUBACK timeout drops the link
		if time.Now().After(deadline) {
			t.Fatal("link still reported connected on a dead link")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, _ := s.Stats(); st.Streams[store.Telemetry].Pending+st.Streams[store.Telemetry].Outbox == 0 {
		t.Fatal("#2/#3 left the buffer without a PUBACK")
	}
	proxy.SetBlackhole(false)
	proxy.CutAll() // the stale half-open connections
	c.until(sub, "#2 and #3", func() bool { return len(c.order) == 3 })
	c.checkReadings(3, ts)
}

func TestPublisher_TLSClientCert(t *testing.T) {
	b := brokertest.Start(t, brokertest.WithTLS())
	sub := b.Subscribe(t, "bureau-4", "hazmon/v1/site-0001/gw-01/#")
	s := openStore(t)
	base := time.Now()
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	appendReadings(t, s, 0, 3, ts)

	bad, err := TLSConfig(config.TLS{CAFile: b.OtherCAFile, CertFile: b.ClientCertFile, KeyFile: b.ClientKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	pb, stopBad := startPublisher(t, s, Options{Brokers: []string{b.URL}, TLS: bad, ConnectTimeout: 2 * time.Second})
	deadline := time.Now().Add(wait)
	for !strings.Contains(pb.Link().LastError, "x509") {
		if time.Now().After(deadline) {
			t.Fatalf("wrong CA: link error %q, want an x509 verification error", pb.Link().LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("wrong CA refused: %s", pb.Link().LastError)
	stopBad()

	good, err := TLSConfig(config.TLS{CAFile: b.CAFile, CertFile: b.ClientCertFile, KeyFile: b.ClientKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	startPublisher(t, s, Options{Brokers: []string{b.URL}, TLS: good})
	c := newChecker(t)
	c.until(sub, "3 readings over TLS", func() bool { return len(c.order) == 3 })
	c.checkReadings(3, ts)
}
