package store

import (
	"fmt"
	"slices"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
)

// record is a record accepted and not yet written to the file.
type record struct {
	rec      uint64
	ts       int64 // sample time, unix ms
	data     []byte
	mono     int64 // run time (ms) when accepted: its age
	done     func(error)
	inFlight bool // in the commit under way
}

// recOverhead is what a record costs in memory besides its data.
const recOverhead = 64

func (r *record) size() int64 { return int64(len(r.data)) + recOverhead }

// formed is a message formed and not yet written to the file's outbox.
type formed struct {
	msg      Message
	inFlight bool
	done     chan struct{} // closed once written (or acked before that)
	fromFile bool          // some of its records were read from the file
}

// span is an inclusive range of record numbers.
type span struct{ from, to uint64 }

func (s span) has(r uint64) bool { return r >= s.from && r <= s.to }

// deadRec is a record to move to the dead-letter bucket.
type deadRec struct {
	rec    uint64
	ts     int64
	data   []byte
	reason string
}

// lane is the in-memory state of one stream (guarded by Store.mu).
type lane struct {
	stream  Stream
	nextRec uint64 // next record number to assign
	nextSeq uint64 // next message seq to assign
	queued  []*record
	// unwritten are formed messages whose outbox record is not yet in the
	// file, in seq order.
	unwritten []*formed
	acked     map[uint64]bool // acks not yet applied to the file
	ackOps    []uint64
	// taken are records consumed (formed into a message, evicted or
	// dead-lettered) that may still be in the file's items until the
	// operation that removes them is written; Form skips them.
	taken  []span
	delOps []span // item ranges to delete from the file
	// dropMsgs are outbox records found damaged, to delete from the file
	// (their data_loss event is queued already).
	dropMsgs []uint64
	deadOps  []deadRec
	// version counts rewrites of pending records in the file (a data_loss
	// record extended by a later eviction): Form reads again when it changed.
	version uint64
	// lastLoss is, per "<stream>/<reason>", the data_loss record in the
	// file that a contiguous eviction extends (event lane only).
	lastLoss map[string]*lossRef
}

// lossRef is a data_loss record written to the file.
type lossRef struct {
	rec uint64
	ls  lossSpan
}

func (l *lane) isTaken(r uint64) bool {
	for _, s := range l.taken {
		if s.has(r) {
			return true
		}
	}
	return false
}

func (l *lane) untake(sp span) {
	for i, s := range l.taken {
		if s == sp {
			l.taken = slices.Delete(l.taken, i, i+1)
			return
		}
	}
}

// firstMemRec is the lowest record number held only in memory, 0 if none.
func (l *lane) firstMemRec() uint64 {
	var m uint64
	if len(l.queued) > 0 {
		m = l.queued[0].rec
	}
	for _, f := range l.unwritten {
		if f.msg.First > 0 && (m == 0 || f.msg.First < m) {
			m = f.msg.First
		}
	}
	return m
}

// initLanes sets the lanes' counters from the high-water mark and, when a
// file is attached, its sequences (the larger wins: nothing is reused).
func (s *Store) initLanes(st hwmState, file map[Stream][2]uint64) {
	for _, name := range Streams {
		l := s.lanes[name]
		if l == nil {
			l = &lane{stream: name, nextRec: 1, nextSeq: 1, acked: map[uint64]bool{}, lastLoss: map[string]*lossRef{}}
			s.lanes[name] = l
		}
		h := st.Streams[string(name)]
		f := file[name]
		l.nextRec = max(l.nextRec, h.Rec+1, f[0]+1)
		l.nextSeq = max(l.nextSeq, h.Seq+1, f[1]+1)
	}
	s.epoch = max(s.epoch, st.Epoch)
}

// ageNow is the buffer's run-time clock in ms: the run time of earlier
// runs plus this one's, on the monotonic clock. A wall-clock step does not
// move it.
func (s *Store) ageNow() int64 { return s.ageBase + s.opts.Mono().Milliseconds() }

// AppendAsync accepts a record without waiting for the disk: it is
// numbered and queued for the next commit (telemetry and statistics: at
// most Options.CommitInterval later; alarms and events: at once). done
// (may be nil) is called from the writer once the record is in the file
// (fsync'd: nil), never before, or with
// ErrEvicted if the memory bound dropped it first (reported in a
// data_loss event), or ErrClosed if Close found it still in memory. It
// fails only after Close (ErrClosed) or for an unknown stream.
func (s *Store) AppendAsync(stream Stream, ts time.Time, data []byte, done func(error)) error {
	if !validStream(stream) {
		return fmt.Errorf("buffer: unknown stream %q", stream)
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.readOnly:
		s.mu.Unlock()
		return ErrBusy
	}
	// The writer needs waking for the first record of a commit window
	// (later ones join it) and for anything urgent.
	wake := s.opts.CommitInterval <= 0 || urgentStream(stream) || !s.lanes[stream].hasQueued()
	s.appendLocked(stream, ts.UnixMilli(), data, done)
	var dropped []func(error)
	if s.memBytes > s.opts.QueueBytes {
		dropped = s.shedLocked() // queues data_loss events: urgent
		wake = true
	}
	s.mu.Unlock()
	for _, d := range dropped {
		d(ErrEvicted)
	}
	if wake {
		s.wake()
	}
	if stream != Telemetry || !s.fileOpen() || s.stalled() {
		// Alarms and events go out at once (Form writes them with their
		// message); with no file or a stalled disk no commit will announce
		// telemetry either. Telemetry otherwise waits for its commit, to
		// go out in batches (with a CommitInterval the writer announces
		// the window it opens, and Form waits for its end: group.go).
		s.signal()
	}
	return nil
}

func (s *Store) appendLocked(stream Stream, ts int64, data []byte, done func(error)) *record {
	l := s.lanes[stream]
	r := &record{rec: l.nextRec, ts: ts, data: data, done: done, mono: s.ageNow()}
	l.nextRec++
	l.queued = append(l.queued, r)
	s.memBytes += r.size()
	return r
}

// requeueLocked puts records back into their lane's queue in rec order
// (event records a failed commit had created).
func (s *Store) requeueLocked(stream Stream, rs []*record) {
	l := s.lanes[stream]
	for _, r := range rs {
		r.inFlight = false
		i, _ := slices.BinarySearchFunc(l.queued, r.rec, func(x *record, rec uint64) int {
			switch {
			case x.rec < rec:
				return -1
			case x.rec > rec:
				return 1
			}
			return 0
		})
		l.queued = slices.Insert(l.queued, i, r)
		s.memBytes += r.size()
	}
}

// Reasons of the data_loss events the buffer raises itself.
const (
	ReasonBufferFull = "buffer_full" // the file's cap (MaxBytes, or the free-space reserve): oldest records dropped
	ReasonMaxAge     = "max_age"     // records older than MaxAge (run time) dropped
	ReasonMemoryFull = "memory_full" // the memory bound (QueueBytes) while the disk could not keep up or was unusable
	ReasonUnreadable = "unreadable"  // a record that could not be formed into a message: moved to the dead letters
)

// lossSpan is one contiguous run of records lost for one reason.
type lossSpan struct {
	stream   Stream
	reason   string
	sp       span
	n        int64
	from, to int64 // sample times, unix ms
	detail   string
}

// memLoss collects the spans of one shedding.
type memLoss struct{ spans []lossSpan }

func (m *memLoss) add(st Stream, reason string, r uint64, ts int64) {
	if k := len(m.spans) - 1; k >= 0 {
		p := &m.spans[k]
		if p.stream == st && p.reason == reason && p.sp.to+1 == r {
			p.sp.to, p.n = r, p.n+1
			p.from, p.to = min(p.from, ts), max(p.to, ts)
			return
		}
	}
	m.spans = append(m.spans, lossSpan{stream: st, reason: reason, sp: span{r, r}, n: 1, from: ts, to: ts})
}

// shedLocked drops the oldest records held only in memory until the
// memory bound has room again (an eighth of it, so that a sustained
// overflow reports in chunks): telemetry first, then events, alarms last;
// never a record being written or already in a message. Each contiguous
// run dropped is reported in a data_loss event. It returns the dropped
// records' done callbacks.
func (s *Store) shedLocked() []func(error) {
	target := s.opts.QueueBytes - s.opts.QueueBytes/8
	var loss memLoss
	var dropped []func(error)
	for _, name := range evictOrder {
		if s.memBytes <= target {
			break
		}
		l := s.lanes[name]
		keep := l.queued[:0]
		for _, r := range l.queued {
			if s.memBytes > target && !r.inFlight && !l.isTaken(r.rec) {
				s.memBytes -= r.size()
				loss.add(name, ReasonMemoryFull, r.rec, r.ts)
				if r.done != nil {
					dropped = append(dropped, r.done)
				}
				continue
			}
			keep = append(keep, r)
		}
		clear(l.queued[len(keep):])
		l.queued = keep
	}
	now := s.opts.Now().UnixMilli()
	for _, ls := range loss.spans {
		s.queueEventLocked(lossEvent(now, ls))
	}
	if len(loss.spans) > 0 {
		s.log.Error("buffer: memory queue full, oldest records dropped", "spans", len(loss.spans), "queue_bytes", s.opts.QueueBytes)
	}
	return dropped
}

// lossEvent is the data_loss event of one span.
func lossEvent(now int64, ls lossSpan) contract.Event {
	detail := fmt.Sprintf("%s=%d", ls.stream, ls.n)
	if ls.detail != "" {
		detail += " " + ls.detail
	}
	return contract.Event{V: contract.Version, Type: contract.EventDataLoss, TS: now, FromTS: ls.from, ToTS: ls.to, Readings: ls.n,
		Reason: ls.reason, Stream: string(ls.stream), Rec: []uint64{ls.sp.from, ls.sp.to}, Detail: detail}
}

// queueEventLocked queues an event the buffer raises itself.
func (s *Store) queueEventLocked(e contract.Event) {
	b, err := contract.Marshal(e)
	if err != nil { // only strings and ints
		s.log.Error("buffer: encode event", "type", e.Type, "err", err)
		return
	}
	s.appendLocked(Event, e.TS, b, nil)
}

// queueNotices queues the buffer_reset and buffer_fault events of Open.
func (s *Store) queueNotices() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reset != nil {
		s.queueEventLocked(resetEvent(s.opts.Now(), s.reset))
	}
	if s.fault != nil {
		s.queueEventLocked(faultEvent(s.opts.Now(), s.fault))
	}
}

func resetEvent(now time.Time, r *Reset) contract.Event {
	salvaged := r.Salvaged
	e := contract.Event{V: contract.Version, Type: contract.EventBufferReset, TS: now.UnixMilli(), Reason: "corrupt", Salvaged: &salvaged,
		Detail: fmt.Sprintf("epoch %d; %v", r.Epoch, r.Cause)}
	if r.MovedTo != "" {
		e.Detail = fmt.Sprintf("moved to %s; epoch %d; %v", baseName(r.MovedTo), r.Epoch, r.Cause)
	}
	if r.Lost >= 0 {
		lost := r.Lost
		e.Lost = &lost
	}
	return e
}

func faultEvent(now time.Time, err error) contract.Event {
	return contract.Event{V: contract.Version, Type: contract.EventBufferFault, TS: now.UnixMilli(), Reason: faultReason(err),
		Detail: "records are held in memory until the file can be written: " + err.Error()}
}

func recoveredEvent(now time.Time, after time.Duration) contract.Event {
	return contract.Event{V: contract.Version, Type: contract.EventBufferFault, TS: now.UnixMilli(), Reason: "recovered",
		Detail: fmt.Sprintf("the buffer file is written again after %s; what memory held is being written", after)}
}

func marshalEvent(e contract.Event) ([]byte, error) { return contract.Marshal(e) }
