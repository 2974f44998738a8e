package asynclog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return t0 }

// gatedSink blocks every Write until it gets a permit (or until open is
// closed), then records the line. entered is signalled when a Write starts.
type gatedSink struct {
	permit  chan struct{}
	open    chan struct{}
	entered chan struct{}
	lines   chan string
	calls   atomic.Int64
}

func newGatedSink() *gatedSink {
	return &gatedSink{permit: make(chan struct{}), open: make(chan struct{}),
		entered: make(chan struct{}, 1), lines: make(chan string, 100000)}
}

func (s *gatedSink) Write(p []byte) (int, error) {
	s.calls.Add(1)
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.permit:
	case <-s.open:
	}
	s.lines <- string(p)
	return len(p), nil
}

func (s *gatedSink) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer goroutine did not start a sink write within 10s")
	}
}

func (s *gatedSink) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-s.lines:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no line reached the sink within 10s")
		return ""
	}
}

func closeWithin(t *testing.T, w *Writer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-w.Done():
	default:
		t.Fatal("Close returned nil but the goroutine has not ended")
	}
}

var droppedRe = regexp.MustCompile(`level=WARN msg="` + DroppedMsg + `" dropped=(\d+) since=(\S+)`)

// A sink that blocks for good must not block logging: 100 000 lines
// through slog return at once, the overflow is counted, and once the sink
// drains the queued lines come out in order, then one line with the exact
// count of the dropped ones.
func TestWriter_StalledSinkNeverBlocksLogging(t *testing.T) {
	sink := newGatedSink()
	w := New(sink, Options{MaxLines: 100, Now: fixedClock})
	log := slog.New(slog.NewTextHandler(w, nil))

	const total = 100000
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := range total {
			log.Info("reading", "i", i)
		}
	}()
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		t.Fatal("logging 100000 lines did not return within 30s: a log call blocked on the stalled sink")
	}
	if d := w.Dropped(); d < total-101 {
		t.Fatalf("dropped %d, want at least %d (100 queued + 1 in flight)", d, total-101)
	}

	close(sink.open)
	closeWithin(t, w, 10*time.Second)
	// Lines in order; each gap in them (a line dropped while the queue was
	// full) marked by a dropped line with its exact size, the last one
	// after the last line. (Usually one gap; two if the goroutine freed a
	// slot while the flood was on.)
	next, gaps, last := 0, 0, ""
	var reported uint64
	for len(sink.lines) > 0 {
		l := <-sink.lines
		last = l
		if m := droppedRe.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			next += n
			reported += uint64(n)
			gaps++
			if m[2] != "2025-03-01T08:00:00.000Z" {
				t.Errorf("since=%s, want the time of the first drop", m[2])
			}
			continue
		}
		if !strings.Contains(l, fmt.Sprintf(" i=%d\n", next)) {
			t.Fatalf("want line i=%d (after %d dropped lines reported), got %q", next, reported, l)
		}
		next++
	}
	if next != total || reported != w.Dropped() || !droppedRe.MatchString(last) || gaps > 2 {
		t.Fatalf("accounted for %d of %d lines, %d dropped reported in %d gaps (Dropped() = %d), last line %q",
			next, total, reported, gaps, w.Dropped(), last)
	}
}

// The dropped line stands where the gap is: after the lines queued before
// the drops, before the first line accepted after them.
func TestWriter_DroppedLineMarksTheGap(t *testing.T) {
	sink := newGatedSink()
	w := New(sink, Options{MaxLines: 2, Now: fixedClock})
	write := func(s string) { _, _ = w.Write([]byte(s + "\n")) }
	write("L0")
	sink.waitEntered(t) // L0 in flight
	write("L1")
	write("L2")
	write("L3") // queue full: dropped
	sink.permit <- struct{}{}
	sink.waitEntered(t) // L1 in flight: one slot free
	write("L4")
	close(sink.open)
	want := []string{"L0\n", "L1\n", "L2\n", "", "L4\n"}
	for i, wl := range want {
		got := sink.next(t)
		if wl == "" {
			if m := droppedRe.FindStringSubmatch(got); m == nil || m[1] != "1" {
				t.Fatalf("line %d: %q, want the dropped line with dropped=1", i, got)
			}
			continue
		}
		if got != wl {
			t.Fatalf("line %d: %q, want %q", i, got, wl)
		}
	}
	closeWithin(t, w, 10*time.Second)
}

// Close with a sink stuck for good returns at its deadline; the goroutine
// discards the queue and ends as soon as the write in flight returns.
func TestWriter_CloseWithStalledSinkReturnsAtDeadline(t *testing.T) {
	sink := newGatedSink()
	w := New(sink, Options{})
	for i := range 10 {
		_, _ = fmt.Fprintf(w, "line %d\n", i)
	}
	sink.waitEntered(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := w.Close(ctx)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "9 line(s) not written") {
		t.Fatalf("Close: %v, want 9 lines not written and the deadline error", err)
	}
	if took < 150*time.Millisecond || took > 5*time.Second {
		t.Fatalf("Close took %v, want about its 200ms deadline", took)
	}
	select {
	case <-w.Done():
		t.Fatal("goroutine ended while its write is still blocked")
	default:
	}
	close(sink.open)
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the writer goroutine did not end within 10s of the sink returning: leaked")
	}
	if got := sink.next(t); got != "line 0\n" {
		t.Fatalf("in-flight line %q", got)
	}
	if n := len(sink.lines); n != 0 {
		t.Fatalf("%d line(s) written after Close's deadline, want none", n)
	}
	if w.Dropped() != 9 {
		t.Fatalf("dropped %d, want the 9 discarded lines", w.Dropped())
	}
	if _, _ = w.Write([]byte("late\n")); w.Dropped() != 10 {
		t.Fatalf("a line after Close: dropped %d, want 10", w.Dropped())
	}
}

// The queue is bounded in bytes as well as lines.
func TestWriter_QueueBoundedInBytes(t *testing.T) {
	sink := newGatedSink()
	w := New(sink, Options{MaxBytes: 100, Now: fixedClock})
	line := strings.Repeat("x", 39) + "\n"
	_, _ = io.WriteString(w, line)
	sink.waitEntered(t) // in flight, not queued
	for range 5 {
		_, _ = io.WriteString(w, line)
	}
	if w.Dropped() != 3 {
		t.Fatalf("dropped %d of 5 lines of 40 bytes with a 100-byte queue, want 3", w.Dropped())
	}
	close(sink.open)
	closeWithin(t, w, 10*time.Second)
	if n := len(sink.lines); n != 4 { // 3 lines + the dropped line
		t.Fatalf("%d lines written, want 4", n)
	}
}

// The dropped line uses the logger's format: JSON for format json.
func TestWriter_DroppedLineInJSON(t *testing.T) {
	sink := newGatedSink()
	w := New(sink, Options{MaxLines: 1, Now: fixedClock,
		Handler: func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) }})
	_, _ = w.Write([]byte("{}\n"))
	sink.waitEntered(t)
	_, _ = w.Write([]byte("{}\n"))
	_, _ = w.Write([]byte("{}\n")) // dropped
	close(sink.open)
	sink.next(t)
	sink.next(t)
	var rec struct {
		Level, Msg, Since string
		Dropped           uint64
	}
	l := sink.next(t)
	if err := json.Unmarshal([]byte(l), &rec); err != nil {
		t.Fatalf("dropped line %q is not JSON: %v", l, err)
	}
	if rec.Level != "WARN" || rec.Msg != DroppedMsg || rec.Dropped != 1 || rec.Since != "2025-03-01T08:00:00Z" {
		t.Fatalf("dropped line %+v", rec)
	}
	closeWithin(t, w, 10*time.Second)
}

// failingSink refuses every write.
type failingSink struct{ calls atomic.Int64 }

func (s *failingSink) Write(p []byte) (int, error) {
	s.calls.Add(1)
	return 0, errors.New("write /dev/stderr: broken pipe")
}

// Lines the sink refuses are counted as dropped, and a sink that keeps
// failing is not retried in a loop: one try per line (and per dropped
// line), and Close returns at once.
func TestWriter_FailingSinkCountedNotRetriedInALoop(t *testing.T) {
	sink := &failingSink{}
	w := New(sink, Options{})
	for i := range 10 {
		_, _ = fmt.Fprintf(w, "line %d\n", i)
	}
	closeWithin(t, w, 10*time.Second)
	if w.Dropped() != 10 {
		t.Fatalf("dropped %d, want 10", w.Dropped())
	}
	if c := sink.calls.Load(); c > 20 {
		t.Fatalf("%d sink writes for 10 lines: a failing sink is retried in a loop", c)
	}
}

// lockedBuffer is a sink that always works.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Many goroutines log at once (run with -race): each one's lines come out
// in its order, and every line is either written or counted, with the
// dropped lines' counts adding up to Dropped.
func TestWriter_ConcurrentWritersKeepOrderAndCount(t *testing.T) {
	sink := &lockedBuffer{}
	w := New(sink, Options{MaxLines: 64})
	log := slog.New(slog.NewTextHandler(w, nil))
	const writers, each = 8, 2000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				log.Info("x", "g", g, "i", i)
			}
		}()
	}
	wg.Wait()
	closeWithin(t, w, 30*time.Second)

	lineRe := regexp.MustCompile(` g=(\d+) i=(\d+)$`)
	last := make([]int, writers)
	for i := range last {
		last[i] = -1
	}
	var written, reported uint64
	for _, l := range strings.Split(strings.TrimSuffix(sink.buf.String(), "\n"), "\n") {
		if m := droppedRe.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			reported += n
			continue
		}
		m := lineRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected line %q", l)
		}
		g, _ := strconv.Atoi(m[1])
		i, _ := strconv.Atoi(m[2])
		if i <= last[g] {
			t.Fatalf("writer %d: line %d after %d", g, i, last[g])
		}
		last[g] = i
		written++
	}
	if written+w.Dropped() != writers*each || reported != w.Dropped() {
		t.Fatalf("written %d + dropped %d != %d, or dropped lines report %d", written, w.Dropped(), writers*each, reported)
	}
}
