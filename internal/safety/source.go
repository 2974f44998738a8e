package safety

import (
	"sync"
	"sync/atomic"

	"github.com/hazmon/hazmon/internal/reading"
)

// DefaultSourceQueue is the readings a Source holds for the Core: a poll
// cycle of a full bus (125 registers' worth of sensors) many times over.
const DefaultSourceQueue = 4096

// Source is one producer's bounded queue into the Core: a bus poller, a
// GPIO input, the bus supervisor. Offer never blocks: when the queue is
// full the reading is dropped and counted as an overrun (Overruns), so a
// stalled Core can never stall a bus, and a babbling source cannot starve
// the others (the Core takes a bounded batch from each source in turn).
type Source struct {
	name string
	core *Core

	mu     sync.Mutex
	q      ring[reading.Reading]
	closed bool

	offered  atomic.Uint64
	overruns atomic.Uint64
}

// Name returns the name the source was created with.
func (s *Source) Name() string { return s.name }

// Offer hands r to the Core without waiting. It reports false, and counts
// an overrun, when the queue is full or the source is closed.
func (s *Source) Offer(r reading.Reading) bool {
	s.mu.Lock()
	ok := !s.closed && s.q.push(r)
	s.mu.Unlock()
	if !ok {
		s.overruns.Add(1)
		return false
	}
	s.offered.Add(1)
	s.core.wakeUp()
	return true
}

// Overruns returns how many readings the queue refused.
func (s *Source) Overruns() uint64 { return s.overruns.Load() }

// Offered returns how many readings the queue accepted.
func (s *Source) Offered() uint64 { return s.offered.Load() }

// Close stops the source: later offers are refused; what is queued is still
// evaluated, then the Core forgets the source.
func (s *Source) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.core.wakeUp()
}

// take moves up to limit queued readings to dst; done reports a closed
// source that is now empty.
func (s *Source) take(dst []reading.Reading, limit int) (out []reading.Reading, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out = s.q.popTo(dst, limit)
	return out, s.closed && s.q.len() == 0
}

// finished reports a closed source whose queue is empty.
func (s *Source) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed && s.q.len() == 0
}

func (s *Source) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.len() > 0
}
