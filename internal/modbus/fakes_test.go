package modbus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/reading"
)

// fakeClock is a Clock for tests that drive the poller step by step on
// one goroutine: time moves only when told (set, advance), and a timer
// (a busy wait) fires at once, moving the clock to its deadline, as if
// nothing else happened meanwhile.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

type fakeTimer struct {
	c  *fakeClock
	ch chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	select {
	case <-t.ch:
	default:
	}
	t.c.advance(max(d, 0))
	t.ch <- t.c.Now()
}

func (t *fakeTimer) Stop() {
	select {
	case <-t.ch:
	default:
	}
}

// fakeLink is a bus link whose replies a test scripts: reply gets the
// index of the transaction (from 0) and the request, and says what it
// returns and how long it takes on the fake clock. With block, a read
// blocks until close (a transport stuck in a driver).
type fakeLink struct {
	clk   *fakeClock // advanced by each transaction's duration; nil = real time
	reply func(n int, rq request) ([]byte, time.Duration, error)
	block bool

	mu     sync.Mutex
	reqs   []request
	sent   []time.Time // when each request was sent (fake clock)
	closed chan struct{}
	once   sync.Once
}

func newFakeLink(clk *fakeClock, reply func(n int, rq request) ([]byte, time.Duration, error)) *fakeLink {
	return &fakeLink{clk: clk, reply: reply, closed: make(chan struct{})}
}

func (f *fakeLink) read(slave byte, table string, addr, count uint16) ([]byte, error) {
	return f.do(request{slave: slave, table: table, addr: addr, count: count})
}

func (f *fakeLink) writeCoil(slave byte, addr uint16, on bool) error {
	_, err := f.do(request{slave: slave, table: TableCoil, addr: addr, write: true, on: on})
	return err
}

func (f *fakeLink) do(rq request) ([]byte, error) {
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, rq)
	if f.clk != nil {
		f.sent = append(f.sent, f.clk.Now())
	}
	f.mu.Unlock()
	if f.block {
		<-f.closed
		return nil, fmt.Errorf("%w: read: port closed", ErrBusDown)
	}
	data, took, err := f.reply(n, rq)
	if f.clk != nil {
		f.clk.advance(took)
	}
	return data, err
}

func (f *fakeLink) close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// requests returns the transactions so far.
func (f *fakeLink) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// value is a one-register reply holding v.
func value(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

// timedSink records readings with the fake clock's time of emission.
type timedSink struct {
	clk *fakeClock
	rs  []reading.Reading
	at  []time.Time
}

func (s *timedSink) emit(r reading.Reading) {
	s.rs = append(s.rs, r)
	s.at = append(s.at, s.clk.Now())
}

// of returns the readings of sensor and when they were emitted.
func (s *timedSink) of(sensor string) ([]reading.Reading, []time.Time) {
	var rs []reading.Reading
	var at []time.Time
	for i, r := range s.rs {
		if r.Sensor == sensor {
			rs, at = append(rs, r), append(at, s.at[i])
		}
	}
	return rs, at
}

// stepPoller is a poller driven synchronously on a fake clock over a
// fakeLink: what Run's serve does, one turn at a time, with the clock
// jumping to the next tick when nothing is due.
type stepPoller struct {
	t   testing.TB
	p   *Poller
	clk *fakeClock
	ln  *fakeLink
	out *timedSink
}

// newStepPoller builds a poller for sensors on a TCP bus with timeout,
// its transactions answered by reply.
func newStepPoller(t testing.TB, timeout time.Duration, sensors []config.Sensor, opts Options,
	reply func(n int, rq request) ([]byte, time.Duration, error)) *stepPoller {
	t.Helper()
	return newStepPollerOn(t, config.Bus{Name: "b", Protocol: "tcp", Address: "127.0.0.1:1", Timeout: config.Duration(timeout)}, sensors, opts, reply)
}

// newStepPollerOn is newStepPoller on bus (named "b").
func newStepPollerOn(t testing.TB, bus config.Bus, sensors []config.Sensor, opts Options,
	reply func(n int, rq request) ([]byte, time.Duration, error)) *stepPoller {
	t.Helper()
	clk := newFakeClock()
	out := &timedSink{clk: clk}
	opts.Clock = clk
	p, err := NewPoller(bus, sensors, out.emit, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.begin(clk.Now())
	return &stepPoller{t: t, p: p, clk: clk, ln: newFakeLink(clk, reply), out: out}
}

// runFor drives the poller for d of fake time.
func (s *stepPoller) runFor(d time.Duration) {
	s.t.Helper()
	end := s.clk.Now().Add(d)
	for s.clk.Now().Before(end) {
		wait, err := s.p.turn(context.Background(), s.ln)
		if err != nil {
			s.t.Fatalf("turn: %v", err)
		}
		s.clk.advance(wait)
	}
}
