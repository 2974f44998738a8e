package asynclog

import (
	"bytes"
	"io"
	"log"
	"log/slog"
	"sync"
	"time"
)

// DefaultStdLogEvery is how often StdLog lets the same message through:
// a library that prints an error on every read of a line sampled every
// 10 ms would otherwise write 100 lines a second.
const DefaultStdLogEvery = 10 * time.Second

// maxStdKeys bounds how many distinct messages StdLog remembers; beyond
// it, new messages share one rate limit.
const maxStdKeys = 256

// StdLog is an io.Writer for log.SetOutput: each line the standard log
// package writes becomes a WARN record of its slog logger with the line
// as message, at most one per Every for the same text. The next record
// of a text carries suppressed=N, the number of its lines left out in
// between (lines never repeated after their window are not reported). It
// is safe for concurrent use.
type StdLog struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	seen map[string]*stdSeen
}

type stdSeen struct {
	last       time.Time
	suppressed uint64
}

// otherKey is the shared rate limit of messages beyond maxStdKeys.
const otherKey = "\x00other"

// NewStdLog returns a bridge into l letting one line per text through
// every every (<= 0: DefaultStdLogEvery). now is its clock (nil:
// time.Now).
func NewStdLog(l *slog.Logger, every time.Duration, now func() time.Time) *StdLog {
	if every <= 0 {
		every = DefaultStdLogEvery
	}
	if now == nil {
		now = time.Now
	}
	return &StdLog{log: l, every: every, now: now, seen: map[string]*stdSeen{}}
}

// Write logs p (one line of the standard log package, trailing newline
// trimmed) unless the same text was logged less than Every ago. It
// returns len(p), nil.
func (b *StdLog) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\r\n"))
	now := b.now()
	b.mu.Lock()
	s := b.entryLocked(msg, now)
	if !s.last.IsZero() && now.Sub(s.last) < b.every {
		s.suppressed++
		b.mu.Unlock()
		return len(p), nil
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	b.mu.Unlock()

	if n > 0 {
		b.log.Warn(msg, "suppressed", n)
	} else {
		b.log.Warn(msg)
	}
	return len(p), nil
}

// entryLocked returns msg's rate-limit entry, forgetting entries idle for
// a whole window when the map is full.
func (b *StdLog) entryLocked(msg string, now time.Time) *stdSeen {
	if s, ok := b.seen[msg]; ok {
		return s
	}
	if len(b.seen) >= maxStdKeys {
		for k, s := range b.seen {
			if k != otherKey && now.Sub(s.last) >= b.every && s.suppressed == 0 {
				delete(b.seen, k)
			}
		}
		if len(b.seen) >= maxStdKeys {
			msg = otherKey
			if s, ok := b.seen[msg]; ok {
				return s
			}
		}
	}
	s := &stdSeen{}
	b.seen[msg] = s
	return s
}

// RedirectStdLog makes the standard log package write through b, without
// its own time stamp and prefix (slog adds the time), and returns the
// function that restores the previous output, flags and prefix.
func RedirectStdLog(b *StdLog) (restore func()) {
	out, flags, prefix := log.Writer(), log.Flags(), log.Prefix()
	log.SetOutput(b)
	log.SetFlags(0)
	log.SetPrefix("")
	return func() {
		log.SetOutput(out)
		log.SetFlags(flags)
		log.SetPrefix(prefix)
	}
}

var _ io.Writer = (*StdLog)(nil)
