package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

// Every wait is within [ceiling/2, ceiling]; the ceiling starts at the
// minimum, doubles, stops at the maximum, and a reset starts it again:
// checked at both ends of the jitter and over random draws.
func TestBackoff_FirstWaitWithinMinEveryWaitWithinMax(t *testing.T) {
	const lo, hi = time.Second, 10 * time.Second
	for name, rnd := range map[string]func(int64) int64{
		"shortest": func(int64) int64 { return 0 },
		"longest":  func(n int64) int64 { return n - 1 },
		"random":   rand.Int64N,
	} {
		b := newBackoff(lo, hi, rnd)
		for round := 0; round < 2; round++ {
			ceiling := lo
			for i := 0; i < 12; i++ {
				w := b.next()
				if w < ceiling/2 || w > ceiling {
					t.Fatalf("%s: round %d wait %d = %v, want within [%v, %v]", name, round, i, w, ceiling/2, ceiling)
				}
				ceiling = min(2*ceiling, hi)
			}
			if ceiling != hi {
				t.Fatalf("%s: ceiling %v after 12 attempts, want the cap %v", name, ceiling, hi)
			}
			b.reset()
		}
	}
	if b := newBackoff(5*time.Second, time.Second, rand.Int64N); b.next() > time.Second {
		t.Fatal("a minimum above the maximum is not capped")
	}
}

// mqtt.reconnect_max becomes the back-off cap; without it the cap is
// 10 s (it was 60 s), and the first retry comes within 1 s.
func TestOptionsFromConfig_ReconnectMaxCapsTheBackoff(t *testing.T) {
	agent := config.Agent{ID: "gw-01", Site: "site-0001"}
	o, err := OptionsFromConfig(config.MQTT{Brokers: []string{"tcp://127.0.0.1:1"}, ReconnectMax: config.Duration(3 * time.Second)}, agent, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.BackoffMax != 3*time.Second {
		t.Errorf("reconnect_max 3s: BackoffMax %v", o.BackoffMax)
	}
	o, err = OptionsFromConfig(config.MQTT{Brokers: []string{"tcp://127.0.0.1:1"}}, agent, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	o.defaults()
	if o.BackoffMax != 10*time.Second || o.BackoffMin > time.Second {
		t.Errorf("defaults: back-off %v..%v, want at most 1s..10s", o.BackoffMin, o.BackoffMax)
	}
}

// attemptProxy relays TCP to a broker and records when each connection
// attempt arrives; while refusing, it closes each new connection at once
// (a broker that is down, seen from the client).
type attemptProxy struct {
	ln       net.Listener
	target   string
	refusing atomic.Bool
	mu       sync.Mutex
	attempts []time.Time
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newAttemptProxy(t *testing.T, target string) *attemptProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &attemptProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cutAll()
		p.wg.Wait()
	})
	return p
}

func (p *attemptProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.attempts = append(p.attempts, time.Now())
		p.mu.Unlock()
		if p.refusing.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *attemptProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *attemptProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// since returns the connect attempts after t0: connections within 100 ms
// of the previous one are one attempt (paho tries MQTT 3.1.1, then 3.1).
func (p *attemptProxy) since(t0 time.Time) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Time
	for _, a := range p.attempts {
		if a.After(t0) && (len(out) == 0 || a.Sub(out[len(out)-1]) > 100*time.Millisecond) {
			out = append(out, a)
		}
	}
	return out
}

func waitConnected(t *testing.T, p *Publisher, want bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for p.Link().Connected != want {
		if time.Now().After(deadline) {
			t.Fatalf("link connected=%v after %v, want %v (last error %q)", p.Link().Connected, within, want, p.Link().LastError)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After the link to a working broker is lost, the first reconnect attempt
// comes within 1 s (the default minimum), and while the broker stays
// away every later attempt comes within reconnect_max (2 s here) of the
// previous one, the waits growing to it; once the broker is back the link
// is up within reconnect_max. The options come from the config
// (mqtt.reconnect_max). Real connections, generous slack for a loaded
// machine.
func TestPublisher_ReconnectFirstWithinASecondThenWithinReconnectMax(t *testing.T) {
	const reconnectMax = 2 * time.Second
	const slack = 400 * time.Millisecond
	b := brokertest.Start(t)
	proxy := newAttemptProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	s := openStore(t)
	o, err := OptionsFromConfig(config.MQTT{Brokers: []string{"tcp://" + proxy.ln.Addr().String()},
		ReconnectMax: config.Duration(reconnectMax), ConnectTimeout: config.Duration(2 * time.Second)},
		config.Agent{ID: "gw-01", Site: "site-0001"}, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	o.BackoffMin = DefaultBackoffMin // startPublisher would shorten an unset one
	p, _ := startPublisher(t, s, o)
	waitConnected(t, p, true, wait)

	proxy.refusing.Store(true)
	lostAt := time.Now()
	proxy.cutAll()
	deadline := time.Now().Add(wait)
	for len(proxy.since(lostAt)) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d attempts in %v", len(proxy.since(lostAt)), wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	at := proxy.since(lostAt)
	gaps := []time.Duration{at[0].Sub(lostAt)}
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	t.Logf("attempts after the loss, each after the previous: %v", gaps)
	if gaps[0] > DefaultBackoffMin+slack {
		t.Errorf("first retry %v after the loss, want within %v", gaps[0], DefaultBackoffMin)
	}
	longest := time.Duration(0)
	for i, g := range gaps[1:] {
		if g > reconnectMax+slack {
			t.Errorf("attempt %d came %v after the previous, want within reconnect_max %v", i+2, g, reconnectMax)
		}
		if g < 200*time.Millisecond {
			t.Errorf("attempt %d came %v after the previous: hammering a broker that is down", i+2, g)
		}
		longest = max(longest, g)
	}
	if longest <= DefaultBackoffMin {
		t.Errorf("the waits never grew past the minimum: %v", gaps)
	}
	proxy.refusing.Store(false)
	backAt := time.Now()
	waitConnected(t, p, true, reconnectMax+slack+2*time.Second)
	t.Logf("link up %v after the broker was reachable again", time.Since(backAt).Round(time.Millisecond))
}

// outageAlarm stops the broker for outage, appends a cut-off alarm to the
// buffer meanwhile, starts the broker again and returns how long after its
// return the alarm reached a subscriber. The publisher's options come from
// the config (mqtt.reconnect_max) with the default minimum.
func outageAlarm(t *testing.T, outage, reconnectMax time.Duration) time.Duration {
	t.Helper()
	b := brokertest.Start(t)
	sub := b.Subscribe(t, "bureau-outage", "hazmon/v1/site-0001/gw-01/alarm")
	s := openStore(t)
	o, err := OptionsFromConfig(config.MQTT{Brokers: []string{b.URL}, ReconnectMax: config.Duration(reconnectMax),
		ConnectTimeout: config.Duration(2 * time.Second), PublishTimeout: config.Duration(3 * time.Second)},
		config.Agent{ID: "gw-01", Site: "site-0001"}, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	o.BackoffMin = DefaultBackoffMin // startPublisher would shorten an unset one
	p, _ := startPublisher(t, s, o)
	waitConnected(t, p, true, wait)

	b.Stop()
	stoppedAt := time.Now()
	v, lim := 1.62, 1.5
	raisedAt := time.Now()
	a, _ := contract.Marshal(contract.Alarm{AlarmID: fmt.Sprintf("CH4-101/cutoff/high/%d", raisedAt.UnixMilli()), Sensor: "CH4-101",
		Level: "cutoff", Direction: "high", State: "raised", TS: raisedAt.UnixMilli(), Value: &v, Limit: &lim, Outputs: []string{"breaker-3"}})
	if err := s.Append(context.Background(), store.Alarm, raisedAt, a); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage - time.Since(stoppedAt)) // the outage itself: nothing to wait for
	b.Start()
	backAt := time.Now()
	select {
	case m := <-sub:
		var got contract.Alarm
		if err := json.Unmarshal(m.Payload, &got); err != nil || got.Level != "cutoff" {
			t.Fatalf("got %s, want the cut-off alarm", m.Payload)
		}
		if err := contract.Validate(contract.KindAlarm, m.Payload); err != nil {
			t.Fatal(err)
		}
		return time.Since(backAt)
	case <-time.After(wait):
		t.Fatalf("the alarm buffered during a %v outage did not arrive within %v of the broker's return", outage, wait)
		return 0
	}
}

// The figure, scaled for every run (about 15 s): a 9 s outage
// with reconnect_max 2 s; the alarm arrives within reconnect_max + 2 s of
// the broker's return (the full figure allows 12 s = 10 s + 2 s).
func TestPublisher_AlarmAfterOutageWithinReconnectMaxScaled(t *testing.T) {
	const reconnectMax = 2 * time.Second
	d := outageAlarm(t, 9*time.Second, reconnectMax)
	t.Logf("9 s outage, reconnect_max %v: the cut-off alarm reached the subscriber %v after the broker's return", reconnectMax, d.Round(time.Millisecond))
	if d > reconnectMax+2*time.Second {
		t.Fatalf("alarm %v after the broker's return, want within %v", d, reconnectMax+2*time.Second)
	}
}

// The figure itself (about 60 s, so only with HAZMON_LONG=1): after
// a 45 s broker outage, with the default reconnect_max (10 s), a buffered
// cut-off alarm reaches a subscriber within 12 s of the broker's return.
func TestPublisher_AlarmAfter45sOutageWithin12s(t *testing.T) {
	if os.Getenv("HAZMON_LONG") != "1" {
		t.Skip("about 60 s: set HAZMON_LONG=1 (TestPublisher_AlarmAfterOutageWithinReconnectMaxScaled runs always)")
	}
	d := outageAlarm(t, 45*time.Second, config.DefaultReconnectMax)
	t.Logf("45 s outage, reconnect_max %v: the cut-off alarm reached the subscriber %v after the broker's return", config.DefaultReconnectMax, d.Round(time.Millisecond))
	if d > 12*time.Second {
		t.Fatalf("alarm %v after the broker's return, want within 12 s", d)
	}
}
