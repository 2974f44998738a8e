// Package asynclog keeps hazmon's logging off its safety path: a Writer
// sits between slog's handler and the log sink (stderr, read by journald)
// and never blocks its callers, and StdLog turns what libraries print
// through the standard log package (periph.io does on GPIO errors) into
// rate-limited slog records.
//
// A log line written while the sink is stalled (journald stuck behind a
// slow SD card, a full pipe) is queued, and dropped and counted once the
// queue is full; a cut-off (GB 50581-2010 §3.1.4: within 2 s) never waits
// for the log. When the sink takes lines again, the Writer says how many
// were dropped and since when, in the configured log format.
package asynclog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Default bounds of a Writer's queue. 4096 lines are minutes of a busy
// agent's log (a few lines a second) and 1 MiB is what a board can spare
// for lines that may never be written.
const (
	DefaultMaxLines = 4096
	DefaultMaxBytes = 1 << 20
)

// DroppedMsg is the message of the line a Writer writes after lines were
// dropped; its attributes are dropped (the count) and since (the time of
// the first dropped line).
const DroppedMsg = "log lines dropped while the log sink was stalled"

// Options configure a Writer. The zero value is usable.
type Options struct {
	// MaxLines and MaxBytes bound the queue of lines not yet written (<= 0:
	// DefaultMaxLines, DefaultMaxBytes). A line that does not fit is
	// dropped and counted.
	MaxLines int
	MaxBytes int
	// Handler formats the Writer's own "lines dropped" line: it is called
	// with the buffer the line goes into and should build the same handler
	// the logger writes through (text or json). Default slog.NewTextHandler
	// with no options.
	Handler func(io.Writer) slog.Handler
	// Now is the clock of the "since" attribute and of the dropped line's
	// time (default time.Now).
	Now func() time.Time
}

// Writer is an io.Writer for slog handlers (and the standard log package)
// that never blocks on its sink: each Write is one log line, copied into a
// bounded queue; a goroutine started by New writes the queue to the sink
// in order. The creator owns that goroutine and must end it with Close.
// A Writer is safe for concurrent use.
type Writer struct {
	sink io.Writer
	opt  Options

	mu       sync.Mutex
	q        []entry // q[head:] are waiting, oldest first
	head     int
	lines    int       // lines waiting (notices not counted)
	bytes    int       // bytes of the lines waiting
	gap      uint64    // lines dropped since the last dropped line was queued or written
	gapSince time.Time // when the first of them was dropped
	closing  bool      // Close was called: new lines are dropped, the rest flushed
	abandon  bool      // Close's deadline passed: stop after the write in flight

	dropped atomic.Uint64
	wake    chan struct{} // one pending wake-up for the goroutine
	done    chan struct{} // closed when the goroutine has ended
}

// entry is a queued line, or (line == nil) a "lines dropped" notice for a
// gap of n lines dropped from since.
type entry struct {
	line  []byte
	n     uint64
	since time.Time
}

// New returns a Writer onto sink and starts its goroutine. Call Close to
// flush and stop it.
func New(sink io.Writer, opt Options) *Writer {
	if opt.MaxLines <= 0 {
		opt.MaxLines = DefaultMaxLines
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	if opt.Handler == nil {
		opt.Handler = func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) }
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	w := &Writer{sink: sink, opt: opt, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// Write queues a copy of p (one log line) and returns at once with
// len(p), nil: it never waits for the sink. A line that does not fit in
// the queue, or comes after Close, is dropped and counted in Dropped.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	fits := !w.closing && w.lines < w.opt.MaxLines && w.bytes+len(p) <= w.opt.MaxBytes
	if !fits {
		w.dropLocked(1)
		w.mu.Unlock()
		return len(p), nil
	}
	if w.gap > 0 {
		// The notice goes where the gap is: after the lines queued before
		// the drops, before this one.
		w.q = append(w.q, entry{n: w.gap, since: w.gapSince})
		w.gap = 0
	}
	w.q = append(w.q, entry{line: bytes.Clone(p)})
	w.lines++
	w.bytes += len(p)
	w.mu.Unlock()
	w.signal()
	return len(p), nil
}

// Dropped returns how many lines were dropped since New: queue full, sink
// write failed, or written after Close.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Done is closed when the Writer's goroutine has ended.
func (w *Writer) Done() <-chan struct{} { return w.done }

// Close stops taking lines, writes the queued ones (and the dropped line
// if lines were dropped) and ends the goroutine. If ctx ends first it
// returns an error wrapping ctx.Err(): the goroutine then discards the
// queue (counted in Dropped) and ends as soon as the sink returns from the
// write in flight, which may be never for a sink stuck for good (Done says
// when). Close may be called more than once.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.signal()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	w.abandon = true
	left := w.lines
	w.mu.Unlock()
	w.signal()
	select {
	case <-w.done: // it had just finished
		return nil
	default:
	}
	return fmt.Errorf("log writer: %d line(s) not written: %w", left, ctx.Err())
}

func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// dropLocked counts n lost lines in the total and the current gap.
func (w *Writer) dropLocked(n uint64) {
	w.dropped.Add(n)
	w.addGapLocked(n, w.opt.Now())
}

func (w *Writer) addGapLocked(n uint64, since time.Time) {
	if w.gap == 0 || since.Before(w.gapSince) {
		w.gapSince = since
	}
	w.gap += n
}

// run writes the queue to the sink until Close.
func (w *Writer) run() {
	defer close(w.done)
	h := noticeFormatter{handler: w.opt.Handler}
	lastOK := true
	for {
		e, ok, quit := w.next(lastOK)
		if quit {
			return
		}
		if !ok {
			<-w.wake
			continue
		}
		lastOK = w.write(e, &h)
	}
}

// next takes the oldest entry. With the queue empty after a successful
// write, a pending gap becomes a notice (after a failed one it waits for
// the next line, so that a failing sink is not retried in a loop). quit
// says the goroutine must end.
func (w *Writer) next(lastOK bool) (e entry, ok, quit bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.abandon {
		if w.lines > 0 {
			w.dropped.Add(uint64(w.lines))
		}
		w.q, w.head, w.lines, w.bytes = nil, 0, 0, 0
		return entry{}, false, true
	}
	if w.head < len(w.q) {
		e = w.q[w.head]
		w.q[w.head] = entry{}
		w.head++
		switch {
		case w.head == len(w.q):
			w.q, w.head = w.q[:0], 0
		case w.head >= 1024 && 2*w.head >= len(w.q):
			n := copy(w.q, w.q[w.head:])
			clear(w.q[n:])
			w.q, w.head = w.q[:n], 0
		}
		if e.line != nil {
			w.lines--
			w.bytes -= len(e.line)
		}
		return e, true, false
	}
	if w.gap > 0 && lastOK {
		e = entry{n: w.gap, since: w.gapSince}
		w.gap = 0
		return e, true, false
	}
	return entry{}, false, w.closing
}

// write writes e to the sink and reports whether the sink took it. A line
// the sink refused is counted as dropped; a refused notice's count goes
// back into the gap.
func (w *Writer) write(e entry, h *noticeFormatter) bool {
	b := e.line
	if b == nil {
		b = h.format(w.opt.Now(), e.n, e.since)
	}
	n, err := w.sink.Write(b)
	if err == nil && n == len(b) {
		return true
	}
	w.mu.Lock()
	if e.line != nil {
		w.dropLocked(1)
	} else {
		w.addGapLocked(e.n, e.since)
	}
	w.mu.Unlock()
	return false
}

// noticeFormatter formats "lines dropped" lines through the configured
// handler into a buffer of its own (used by the writer goroutine only).
type noticeFormatter struct {
	handler func(io.Writer) slog.Handler
	buf     bytes.Buffer
	h       slog.Handler
}

func (f *noticeFormatter) format(now time.Time, n uint64, since time.Time) []byte {
	if f.h == nil {
		f.h = f.handler(&f.buf)
	}
	f.buf.Reset()
	r := slog.NewRecord(now, slog.LevelWarn, DroppedMsg, 0)
	r.AddAttrs(slog.Uint64("dropped", n), slog.Time("since", since))
	// Handle, not the logger: the line is written whatever the level.
	if err := f.h.Handle(context.Background(), r); err != nil || f.buf.Len() == 0 {
		f.buf.Reset()
		fmt.Fprintf(&f.buf, "level=WARN msg=%q dropped=%d since=%s\n", DroppedMsg, n, since.Format(time.RFC3339Nano))
	}
	return f.buf.Bytes()
}
