package mtt

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// fakeClock is advanced by hand: tickers and After timers fire when the
// time passes them. Every After's duration is reported on afters.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
	timers  []fakeTimer
	afters  chan time.Duration
}

type fakeTicker struct {
	c       chan time.Time
	d       time.Duration
	next    time.Time
	stopped bool
	clk     *fakeClock
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, afters: make(chan time.Duration, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(d time.Duration) Ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{c: make(chan time.Time, 1), d: d, next: c.now.Add(d), clk: c}
	c.tickers = append(c.tickers, t)
	return t
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), c: ch})
	c.mu.Unlock()
	c.afters <- d
	return ch
}

// Advance moves the time on by d and fires what is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.tickers {
		for !t.stopped && !t.next.After(c.now) {
			select {
			case t.c <- t.next:
			default: // like time.Ticker: a slow reader loses ticks
			}
			t.next = t.next.Add(t.d)
		}
	}
	kept := c.timers[:0]
	for _, x := range c.timers {
		if x.at.After(c.now) {
			kept = append(kept, x)
		} else {
			x.c <- c.now
		}
	}
	c.timers = kept
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }
func (t *fakeTicker) Stop() {
	t.clk.mu.Lock()
	t.stopped = true
	t.clk.mu.Unlock()
}

type uploaded struct {
	name string
	data []byte
}

// fakeUploader hands every confirmed upload to got; fail, if set, decides
// per attempt whether it fails (it may block until ctx ends).
type fakeUploader struct {
	got  chan uploaded
	fail func(ctx context.Context, name string) error

	mu       sync.Mutex
	attempts int
	closed   bool
}

func newFakeUploader() *fakeUploader { return &fakeUploader{got: make(chan uploaded, 10000)} }

func (u *fakeUploader) Upload(ctx context.Context, name, path string) error {
	u.mu.Lock()
	u.attempts++
	u.mu.Unlock()
	if u.fail != nil {
		if err := u.fail(ctx, name); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	u.got <- uploaded{name, data}
	return nil
}

func (u *fakeUploader) Close() error {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	return nil
}

// next waits (bounded) for the next confirmed upload.
func (u *fakeUploader) next(t *testing.T) uploaded {
	t.Helper()
	select {
	case f := <-u.got:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no upload within 10 s")
		return uploaded{}
	}
}

// eventually polls cond (real I/O, generous bound).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
