package publish

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

// faultProxy relays TCP to the broker. cutOn: the first connection whose
// client→broker stream contains the marker is closed right after the
// broker has read that chunk, and nothing the broker sends back after it
// (the PUBACK) reaches the client. rate > 0 throttles both directions to
// rate bytes/s (a slow uplink).
type faultProxy struct {
	ln     net.Listener
	target string
	marker []byte
	rate   int
	cut    atomic.Bool // the marker connection has been cut
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newFaultProxy(t *testing.T, target string, marker []byte, rate int) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, marker: marker, rate: rate}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			var dropBack atomic.Bool
			p.wg.Add(2)
			go p.relay(up, c, func(b []byte) bool { // client → broker
				if p.marker != nil && !p.cut.Load() && bytes.Contains(b, p.marker) {
					p.cut.Store(true)
					dropBack.Store(true)
					up.Write(b)
					time.Sleep(200 * time.Millisecond) // the broker reads it (and acks into the void)
					c.Close()
					up.Close()
					return false
				}
				return true
			})
			go p.relay(c, up, func([]byte) bool { return !dropBack.Load() }) // broker → client
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) relay(dst, src net.Conn, pass func([]byte) bool) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 512)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !pass(buf[:n]) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if p.rate > 0 {
				time.Sleep(time.Duration(n) * time.Second / time.Duration(p.rate))
			}
		}
		if err != nil {
			return
		}
	}
}

// M1 variant: the broker reads #2 and the connection closes before its
// PUBACK reaches the agent. #2 stays in the buffer, is sent again on the
// next connection with the same seq, and #3 follows: nothing is lost,
// the only duplicate is an exact repeat.
func TestPublisher_BrokerClosesBeforePuback(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-m1v", "hazmon/v1/site-0001/gw-01/#")
	base := time.Now().Add(-time.Hour)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	marker := reading(1, ts(1)) // the body of #2
	proxy := newFaultProxy(t, strings.TrimPrefix(b.URL, "tcp://"), marker, 0)
	s := openStore(t)
	startPublisher(t, s, Options{Brokers: []string{"tcp://" + proxy.ln.Addr().String()}, BatchMax: 1,
		ConnectTimeout: 2 * time.Second, PublishTimeout: 2 * time.Second})
	c := newChecker(t)
	appendReadings(t, s, 0, 1, ts)
	c.until(sub, "#1", func() bool { return len(c.order) == 1 })
	appendReadings(t, s, 1, 2, ts)
	c.until(sub, "#2 and #3", func() bool { return len(c.order) == 3 })
	c.checkReadings(3, ts)
	if !proxy.cut.Load() {
		t.Fatal("the proxy never saw #2: the fault was not injected")
	}
	deadline := time.Now().Add(wait)
	for {
		st, _ := s.Stats()
		if p, o := st.Depth(); p+o == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("buffer not empty after every PUBACK: %+v", st.Streams[store.Telemetry])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// S3: 1000 buffered readings survive five reconnects, each with an
// unchanged config (buffer reopened, publisher rebuilt) while the broker
// cannot be reached; then all 1000 arrive in order.
func TestPublisher_ReconnectsKeepBuffer(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-s3", "hazmon/v1/site-0001/gw-01/#")
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	proxy.SetBlackhole(true)
	path := t.TempDir() + "/buffer.db"
	s, err := store.Open(path, store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * 100 * time.Millisecond) }
	appendReadings(t, s, 0, 1000, ts)
	count := func() int {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		n := st.Streams[store.Telemetry].Pending
		out, _ := s.Outbox(store.Telemetry, 0, 0)
		for _, m := range out {
			n += m.Items
		}
		return n
	}
	opts := Options{Brokers: []string{"tcp://" + proxy.Addr()}, ConnectTimeout: 300 * time.Millisecond}
	for i := 0; i < 5; i++ {
		p, stop := startPublisher(t, s, opts)
		deadline := time.Now().Add(wait)
		for p.Link().LastError == "" {
			if time.Now().After(deadline) {
				t.Fatal("no connection attempt")
			}
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = store.Open(path, store.Options{Logger: quiet}); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 1000 {
			t.Fatalf("reconnect %d: %d records buffered, want 1000", i+1, n)
		}
	}
	defer s.Close()
	proxy.SetBlackhole(false)
	proxy.CutAll()
	startPublisher(t, s, opts)
	c := newChecker(t)
	c.until(sub, "all 1000 readings", func() bool { return len(c.order) == 1000 })
	c.checkReadings(1000, ts)
}

// M3: replay must not choke a slow uplink. A backlog replayed over a
// 64 kbit/s uplink (8000 B/s both ways through the proxy: the case's own
// rate). Paced by the byte window and the rate, the link is never dropped
// (one session: "online" once, no link error, so no keepalive ping was
// starved: paho drops the connection when a PINGRESP is late), and
// everything arrives in order. Unpaced (16 messages of ~2 kB in flight =
// 4 s of queue) the PUBACK timeout would drop the link again and again.
//
// Scaled against the case (10 000 messages of 200 B = 2 MB, 250 s at
// 64 kbit/s, 30 s keepalive, 10 s PUBACK timeout): 500 readings of ~95 B
// in 25 messages of ~2 kB (about 50 kB, 9 s of link time); keepalive 2 s
// (15× shorter, so a ping is due 15× more often relative to the replay:
// starving it is more likely here, not less) and PUBACK timeout 3 s (a
// window of queued bytes has less time to drain). The full case would
// take over 4 minutes of wall time for the same properties.
func TestPublisher_SlowLinkPacedReplay(t *testing.T) {
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-m3", "hazmon/v1/site-0001/gw-01/#")
	const linkRate = 8000 // bytes/s: 64 kbit/s
	proxy := newFaultProxy(t, strings.TrimPrefix(b.URL, "tcp://"), nil, linkRate)
	s := openStore(t)
	base := time.Now().Add(-time.Hour)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * 100 * time.Millisecond) }
	appendReadings(t, s, 0, 500, ts)
	p, _ := startPublisher(t, s, Options{Brokers: []string{"tcp://" + proxy.ln.Addr().String()},
		KeepAlive: 2 * time.Second, PublishTimeout: 3 * time.Second, ConnectTimeout: 3 * time.Second,
		BatchMax: 20, WindowBytes: 6000, RateBytes: 6000})
	c := newChecker(t)
	start := time.Now()
	c.until(sub, "500 readings over the slow link", func() bool { return len(c.order) == 500 })
	c.checkReadings(500, ts)
	online := 0
	for _, st := range c.statuses {
		if st == "online" {
			online++
		}
	}
	if online != 1 || lastIs(c.statuses, "offline") || p.Link().LastError != "" {
		t.Fatalf("link dropped during the paced replay: statuses %v, last error %q", c.statuses, p.Link().LastError)
	}
	t.Logf("500 readings (%d messages) over %d B/s in %v, one session", c.maxSeq["telemetry"], linkRate, time.Since(start).Round(time.Millisecond))
}
