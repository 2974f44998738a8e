package publish

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

// M1 timings, scaled: the case's link returns after 90 s; here after 6 s
// (15×), with the PUBACK timeout 1.5 s instead of the default 10 s and the
// keepalive 4.5 s instead of 30 s (the field's 3:1 ratio kept, so it is the
// PUBACK timeout, not a keepalive ping, that notices the dead link first),
// so the outage still spans several PUBACK timeouts and reconnect attempts
// as it would in the field.
const (
	m1PublishTimeout = 1500 * time.Millisecond
	m1Outage         = 6 * time.Second
	// m1Margin is the slack allowed above a timeout on a loaded 2-core
	// machine. A wait that is not bounded by its own timeout takes one
	// more timeout at least (the sum of two waits), which it does not hide.
	m1Margin = time.Second
)

func m1Options(proxy *brokertest.Proxy) Options {
	return Options{Brokers: []string{"tcp://" + proxy.Addr()}, BatchMax: 1,
		KeepAlive: 3 * m1PublishTimeout, ConnectTimeout: time.Second, PublishTimeout: m1PublishTimeout}
}

// m1Held returns how many of the readings want (by value) the buffer file
// holds, pending or in an outbox message.
func m1Held(t *testing.T, s *store.Store, want ...int) int {
	t.Helper()
	var all strings.Builder
	items, err := s.Pending(store.Telemetry, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		all.Write(it.Data)
	}
	msgs, err := s.Outbox(store.Telemetry, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		all.Write(m.Payload)
	}
	n := 0
	for _, i := range want {
		if strings.Contains(all.String(), valueField(i)) {
			n++
		}
	}
	return n
}

// valueField is the JSON value field of reading i, which identifies it.
func valueField(i int) string {
	r := string(reading(i, time.UnixMilli(0)))
	at := strings.Index(r, `"value":`)
	end := strings.Index(r[at:], ",")
	return r[at : at+end+1]
}

// m1Start publishes #1 and waits until its PUBACK emptied the buffer.
func m1Start(t *testing.T, s *store.Store, sub <-chan brokertest.Message, c *checker, ts func(int) time.Time) {
	t.Helper()
	appendReadings(t, s, 0, 1, ts)
	c.until(sub, "#1", func() bool { return len(c.order) == 1 })
	deadline := time.Now().Add(wait)
	for {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if p, o := st.Depth(); p+o == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("#1 not acked in the buffer: %+v", st.Streams[store.Telemetry])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// m1Append appends #2 and #3 while the link is dead: each append is
// confirmed by the disk, never held up by the network.
func m1Append(t *testing.T, s *store.Store, ts func(int) time.Time) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err := s.Append(ctx, store.Telemetry, ts(i), reading(i, ts(i)))
		cancel()
		if err != nil {
			t.Fatalf("append #%d on a dead link: %v (after %v)", i+1, err, time.Since(start))
		}
	}
}

// M1: a dead link never blocks or lies. #1 is published and acked; the
// link then silently drops every packet (no reset: proxy blackhole); #2
// and #3 are appended (confirmed by the disk at once). For the whole
// outage (scaled, see m1Outage) #2 and #3 stay in the bbolt file, the
// dead link is noticed (reported down) within the PUBACK timeout plus the
// keepalive, and no reading is reported delivered. When the link returns
// all three arrive in order (repeats allowed, loss not) and only then is
// the buffer empty.
func TestCases_M1DeadLinkNeverBlocks(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-m1", "hazmon/v1/site-0001/gw-01/#")
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	s := openStore(t)
	base := time.Now().Add(-time.Minute)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	p, _ := startPublisher(t, s, m1Options(proxy))
	c := newChecker(t)
	m1Start(t, s, sub, c, ts)

	proxy.SetBlackhole(true)
	dead := time.Now()
	m1Append(t, s, ts)
	noticed := time.Duration(0)
	for time.Since(dead) < m1Outage {
		if n := m1Held(t, s, 1, 2); n != 2 {
			t.Fatalf("%v into the outage: the buffer holds %d of #2 and #3, want both (no PUBACK on a live session yet)", time.Since(dead).Round(time.Millisecond), n)
		}
		if noticed == 0 && !p.Link().Connected {
			noticed = time.Since(dead)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if noticed == 0 {
		t.Fatalf("link still reported connected %v into a dead link", m1Outage)
	}
	// Detection: the PUBACK timeout of #2, plus slack.
	if limit := m1PublishTimeout + m1Margin; noticed > limit {
		t.Fatalf("dead link noticed after %v, want within %v", noticed, limit)
	}
	if len(c.order) != 1 {
		t.Fatalf("subscriber saw %d readings during the outage, want 1", len(c.order))
	}
	proxy.SetBlackhole(false)
	proxy.CutAll() // the half-open connections of the outage
	c.until(sub, "#2 and #3 after the link returned", func() bool { return len(c.order) == 3 })
	c.checkReadings(3, ts)
	t.Logf("dead link noticed after %v; %d online statuses", noticed.Round(time.Millisecond), strings.Count(strings.Join(c.statuses, ","), "online"))
	deadline := time.Now().Add(wait)
	for m1Held(t, s, 1, 2) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("#2/#3 still buffered after their PUBACKs")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// M1, shutdown: the agent is stopped (Run cancelled) while #2 waits for a
// PUBACK that a dead link will never deliver. Run returns within one
// PUBACK timeout (plus a margin), not after a chain of waits; #2 and #3
// stay in the bbolt file; after the link returns, the restarted publisher
// delivers both.
func TestCases_M1ShutdownOnDeadLinkBounded(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-m1s", "hazmon/v1/site-0001/gw-01/#")
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	s := openStore(t)
	base := time.Now().Add(-time.Minute)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	p, stop := startPublisher(t, s, m1Options(proxy))
	c := newChecker(t)
	m1Start(t, s, sub, c, ts)

	proxy.SetBlackhole(true)
	m1Append(t, s, ts)
	deadline := time.Now().Add(wait)
	for p.Link().InFlight == 0 { // #2 published into the dead link
		if time.Now().After(deadline) {
			t.Fatal("#2 never went in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	stop()
	took := time.Since(start)
	if limit := m1PublishTimeout + m1Margin; took > limit {
		t.Fatalf("Run returned %v after cancel on a dead link, want within the PUBACK timeout %v + %v", took, m1PublishTimeout, m1Margin)
	}
	if n := m1Held(t, s, 1, 2); n != 2 {
		t.Fatalf("after shutdown the buffer holds %d of #2 and #3, want both", n)
	}
	proxy.SetBlackhole(false)
	proxy.CutAll()
	startPublisher(t, s, m1Options(proxy))
	c.until(sub, "#2 and #3 after restart", func() bool { return len(c.order) == 3 })
	c.checkReadings(3, ts)
	t.Logf("shutdown on a dead link took %v (PUBACK timeout %v)", took.Round(time.Millisecond), m1PublishTimeout)
}
