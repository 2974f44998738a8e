package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fakeClock drives the writer's timers (Options.After) and run time
// (Options.Mono) by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Duration
	d  time.Duration
	ch chan time.Time
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{at: c.now + d, d: d, ch: ch})
	return ch
}

func (c *fakeClock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d and fires the timers due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now += d
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.at <= c.now {
			t.ch <- t0.Add(c.now)
			continue
		}
		keep = append(keep, t)
	}
	c.timers = keep
}

// waitTimer waits (real time, bounded) until a timer of duration d is
// pending: the writer has opened a window (or started the ack flush).
func (c *fakeClock) waitTimer(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, tm := range c.timers {
			if tm.d == d {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("no %s timer started\n%s", d, buf[:runtime.Stack(buf, true)])
}

func (c *fakeClock) pending(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, tm := range c.timers {
		if tm.d == d {
			n++
		}
	}
	return n
}

const testInterval = 200 * time.Millisecond

// openGroup opens a store with a 200 ms commit window on a fake clock;
// commits counts its write transactions.
func openGroup(t *testing.T, path string) (*Store, *fakeClock, *atomic.Int64) {
	t.Helper()
	clk := &fakeClock{}
	commits := &atomic.Int64{}
	s := open(t, path, Options{CommitInterval: testInterval, After: clk.After, Mono: clk.Mono,
		BeforeCommit: func() { commits.Add(1) }})
	return s, clk, commits
}

// waitUntil polls cond (real time, bounded): for what another goroutine
// does once the fake clock let it.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// appendAsync appends n telemetry records and returns how many of their
// done callbacks have been told so far.
func appendAsync(t *testing.T, s *Store, st Stream, first, n int) *atomic.Int64 {
	t.Helper()
	told := &atomic.Int64{}
	for i := first; i < first+n; i++ {
		err := s.AppendAsync(st, t0.Add(time.Duration(i)*time.Second), []byte(fmt.Sprintf(`{"n":%d}`, i)), func(err error) {
			if err != nil {
				t.Errorf("record %d: %v", i, err)
			}
			told.Add(1)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return told
}

// waitFormAtGate waits until one Form waits at the commit window's gate.
func waitFormAtGate(t *testing.T, s *Store) {
	t.Helper()
	waitUntil(t, "Form at the window's gate", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.forming == 1
	})
}

func TestGroupCommit_IdleCommitsNothing(t *testing.T) {
	s, clk, commits := openGroup(t, filepath.Join(t.TempDir(), "buffer.db"))
	// An idle agent: the publisher forms on every stream (nothing there),
	// reads the outbox and stats, acks nothing, over ten minutes.
	for range 600 {
		for _, st := range Streams {
			if _, ok, err := s.Form(st, 10, 0, joinBuild); err != nil || ok {
				t.Fatalf("Form %s on an empty stream: ok %v err %v", st, ok, err)
			}
			if _, err := s.Outbox(st, 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Stats(); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	if n := clk.pending(testInterval) + clk.pending(AckFlushAfter); n != 0 {
		t.Fatalf("idle writer started %d timers", n)
	}
	// One record then: its commit is the first and only one (the writer
	// has seen every wake-up of the idle loop by the time it starts it).
	told := appendAsync(t, s, Telemetry, 0, 1)
	clk.waitTimer(t, testInterval)
	clk.Advance(testInterval)
	waitUntil(t, "the record's commit", func() bool { return told.Load() == 1 })
	if n := commits.Load(); n != 1 {
		t.Fatalf("%d commits, want 1: the idle store committed %d times with nothing to write", n, n-1)
	}
}

func TestGroupCommit_AppendsWithinIntervalAreOneCommit(t *testing.T) {
	s, clk, commits := openGroup(t, filepath.Join(t.TempDir(), "buffer.db"))
	told := appendAsync(t, s, Telemetry, 0, 300)
	clk.waitTimer(t, testInterval)
	told2 := appendAsync(t, s, Statistics, 0, 3) // same window
	clk.Advance(testInterval - time.Millisecond)
	if n := told.Load() + told2.Load(); n != 0 || commits.Load() != 0 {
		t.Fatalf("before the window ended: %d records told durable, %d commits", n, commits.Load())
	}
	clk.Advance(time.Millisecond)
	waitUntil(t, "the window's commit", func() bool { return told.Load() == 300 && told2.Load() == 3 })
	if n := commits.Load(); n != 1 {
		t.Fatalf("%d commits for one window, want 1", n)
	}
	if got := len(pendingItems(t, s, Telemetry)); got != 300 {
		t.Fatalf("%d records in the file, want 300", got)
	}
}

func TestGroupCommit_AlarmCommitsAtOnce(t *testing.T) {
	s, _, commits := openGroup(t, filepath.Join(t.TempDir(), "buffer.db"))
	appendAsync(t, s, Telemetry, 0, 5) // a window is open: the alarm does not wait for it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Append(ctx, Alarm, t0, []byte(`{"a":1}`)); err != nil {
		t.Fatalf("alarm not committed without the clock moving: %v", err)
	}
	if commits.Load() != 1 {
		t.Fatalf("%d commits, want 1", commits.Load())
	}
	if got := len(pendingItems(t, s, Telemetry)); got != 5 {
		t.Fatalf("the alarm's commit carried %d of the 5 telemetry records waiting, want all", got)
	}
}

func TestGroupCommit_FormAndAckAddNoCommits(t *testing.T) {
	s, clk, commits := openGroup(t, filepath.Join(t.TempDir(), "buffer.db"))
	told := appendAsync(t, s, Telemetry, 0, 10)
	clk.waitTimer(t, testInterval)
	type formed struct {
		m   Message
		ok  bool
		err error
	}
	res := make(chan formed, 1)
	go func() {
		m, ok, err := s.Form(Telemetry, 4, 0, joinBuild)
		res <- formed{m, ok, err}
	}()
	waitFormAtGate(t, s)
	clk.Advance(testInterval)
	f := <-res
	if f.err != nil || !f.ok {
		t.Fatalf("Form: ok %v err %v", f.ok, f.err)
	}
	waitUntil(t, "the records told durable", func() bool { return told.Load() == 10 })
	if commits.Load() != 1 {
		t.Fatalf("after the window: %d commits; want 1 (records and messages together)", commits.Load())
	}
	out, err := s.Outbox(Telemetry, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].Seq != f.m.Seq || out[2].Items != 2 {
		t.Fatalf("outbox %d messages, want the 3 formed ahead from 10 records by 4", len(out))
	}
	inFile := 0
	_ = s.db.View(func(tx *bolt.Tx) error { inFile = tx.Bucket(outboxBucket(Telemetry)).Stats().KeyN; return nil })
	if inFile != 3 {
		t.Fatalf("%d messages in the file's outbox, want 3 (all written by the window's commit)", inFile)
	}

	for _, m := range out {
		if err := s.Ack(Telemetry, m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Outbox(Telemetry, 0, 0); len(got) != 0 {
		t.Fatalf("%d messages still offered after their acks", len(got))
	}
	clk.waitTimer(t, AckFlushAfter) // acks alone: written late, not now
	if clk.pending(testInterval) != 0 || commits.Load() != 1 {
		t.Fatalf("acks opened a window of their own (%d commits)", commits.Load())
	}
	told = appendAsync(t, s, Telemetry, 10, 1)
	clk.waitTimer(t, testInterval)
	clk.Advance(testInterval)
	waitUntil(t, "the next window's commit", func() bool { return told.Load() == 1 })
	if n := commits.Load(); n != 2 {
		t.Fatalf("%d commits, want 2: the acks ride on the next record's commit", n)
	}
	_ = s.db.View(func(tx *bolt.Tx) error { inFile = tx.Bucket(outboxBucket(Telemetry)).Stats().KeyN; return nil })
	if inFile != 0 {
		t.Fatalf("%d acked messages still in the file after the next commit", inFile)
	}
}

func TestGroupCommit_AcksAloneWrittenAfterAckFlushAfter(t *testing.T) {
	s, clk, commits := openGroup(t, filepath.Join(t.TempDir(), "buffer.db"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Append(ctx, Event, t0, []byte(`{"e":1}`)); err != nil {
		t.Fatal(err)
	}
	m, ok, err := s.Form(Event, 1, 0, joinBuild)
	if err != nil || !ok {
		t.Fatalf("Form: %v %v", ok, err)
	}
	before := commits.Load()
	if err := s.Ack(Event, m.Seq); err != nil {
		t.Fatal(err)
	}
	clk.waitTimer(t, AckFlushAfter)
	clk.Advance(AckFlushAfter - time.Millisecond)
	if commits.Load() != before {
		t.Fatal("the ack was written before AckFlushAfter with nothing else to write")
	}
	clk.Advance(time.Millisecond)
	waitUntil(t, "the ack's commit", func() bool { return commits.Load() == before+1 })
}

// A power cut after a message was written and published but before its
// ack was: the message is offered again byte for byte, same seq, and its
// records are not formed into another one.
func TestGroupCommit_UnwrittenAckMeansExactRepeat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "buffer.db")
	s, clk, _ := openGroup(t, path)
	told := appendAsync(t, s, Telemetry, 0, 6)
	clk.waitTimer(t, testInterval)
	clk.Advance(testInterval)
	waitUntil(t, "the records' commit", func() bool { return told.Load() == 6 })
	res := make(chan Message, 1)
	go func() {
		m, _, _ := s.Form(Telemetry, 3, 0, joinBuild)
		res <- m
	}()
	clk.waitTimer(t, testInterval)
	clk.Advance(testInterval)
	m := <-res
	if err := s.Ack(Telemetry, m.Seq); err != nil {
		t.Fatal(err)
	}
	// What a power cut leaves: the file as its last commit wrote it.
	crashed := filepath.Join(dir, "crashed.db")
	for _, suffix := range []string{"", hwmSuffix} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2 := open(t, crashed, Options{})
	out, err := s2.Outbox(Telemetry, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Seq != m.Seq || !bytes.Equal(out[0].Payload, m.Payload) {
		t.Fatalf("after the crash the outbox holds %d messages (first seq %d %q), want the unacked %d %q again and the one formed ahead",
			len(out), out[0].Seq, out[0].Payload, m.Seq, m.Payload)
	}
	if _, ok, err := s2.Form(Telemetry, 3, 0, joinBuild); err != nil || ok {
		t.Fatalf("records of the written messages formed again: ok %v err %v", ok, err)
	}
}

func TestGroupCommit_FormOfAStreamWithNothingWaitingDoesNotWait(t *testing.T) {
	s, clk, _ := openGroup(t, filepath.Join(t.TempDir(), "buffer.db"))
	appendAsync(t, s, Telemetry, 0, 5)
	clk.waitTimer(t, testInterval) // telemetry's window is open
	done := make(chan error, 1)
	go func() {
		_, ok, err := s.Form(Statistics, 1, 0, joinBuild)
		if ok {
			err = fmt.Errorf("a statistics message formed from nothing")
		}
		done <- err
	}()
	select { // the clock does not move: it must return without the window
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Form of an empty stream waited for another stream's commit window")
	}
}

func TestGroupCommit_AlarmEndsTheWindowOfAWaitingForm(t *testing.T) {
	s, clk, commits := openGroup(t, filepath.Join(t.TempDir(), "buffer.db"))
	appendAsync(t, s, Telemetry, 0, 5)
	clk.waitTimer(t, testInterval)
	res := make(chan bool, 1)
	go func() {
		_, ok, _ := s.Form(Telemetry, 10, 0, joinBuild)
		res <- ok
	}()
	waitFormAtGate(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Append(ctx, Alarm, t0, []byte(`{"a":1}`)); err != nil {
		t.Fatalf("alarm not committed while a Form waited at the window: %v", err)
	}
	select { // the publisher is free for the alarm without the clock moving
	case ok := <-res:
		if !ok {
			t.Fatal("the waiting Form formed nothing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Form waiting at the window still waits after the alarm's commit")
	}
	if n := commits.Load(); n != 1 {
		t.Fatalf("%d commits, want 1: the alarm, the records and the message together", n)
	}
}

func TestGroupCommit_CloseWritesTheOpenWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s, clk, _ := openGroup(t, path)
	told := appendAsync(t, s, Telemetry, 0, 7)
	clk.waitTimer(t, testInterval)
	if err := s.Close(); err != nil { // the clock does not move
		t.Fatal(err)
	}
	if told.Load() != 7 {
		t.Fatalf("Close returned with %d of 7 records told written", told.Load())
	}
	s2 := open(t, path, Options{})
	if got := len(pendingItems(t, s2, Telemetry)); got != 7 {
		t.Fatalf("%d records in the file after Close, want 7", got)
	}
}
