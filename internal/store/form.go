package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxDeadPerForm bounds the records one Form call moves to the dead
// letters before it returns (the next call goes on).
const maxDeadPerForm = 64

// Form builds the next message of stream from up to maxItems pending
// records (and, beyond the first, at most maxBytes of record data) with
// contiguous record numbers, oldest first, and assigns the stream's next
// seq. The message is written to the outbox by the next writer round;
// Form waits for that round at most CommitInterval + StallAfter (not at
// all while the disk is stalled or the file unusable): past that the
// message is returned from memory, and still written when the disk
// recovers. With a CommitInterval, a Form of telemetry or statistics
// waits for the end of an open commit window and then forms, besides the
// message it returns, further messages from what is pending (at most
// formAheadMax), all written by the window's commit: the caller finds them
// in Outbox. A message is published only once it is written, so after a
// crash it is sent again as an exact repeat. A record that
// build cannot encode (or that is malformed in the file) is moved to the
// dead letters and reported in a data_loss event (reason "unreadable"),
// and the stream goes on. A message returned before it is written waits,
// at most StallAfter more, until the saved high-water mark covers its
// seq and the numbers of its records only in memory (marker.go). ok is
// false if the stream has nothing pending; after Close it fails with
// ErrClosed.
func (s *Store) Form(stream Stream, maxItems, maxBytes int, build BuildFunc) (msg Message, ok bool, err error) {
	i := streamIndex(stream)
	if i < 0 {
		return Message{}, false, fmt.Errorf("buffer: unknown stream %q", stream)
	}
	s.formMu[i].Lock()
	defer s.formMu[i].Unlock()
	if s.isClosed() { // Close saved the numbers handed out: a message formed now would reuse them
		return Message{}, false, ErrClosed
	}
	if s.isReadOnly() {
		return Message{}, false, fmt.Errorf("buffer %s: form %s message: read-only", s.path, stream)
	}
	if maxItems <= 0 {
		maxItems = 1
	}
	release := s.atGate(stream)
	f, ok, err := s.formOne(stream, maxItems, maxBytes, build)
	if ok && s.opts.CommitInterval > 0 && s.fileOpen() && !s.stalled() {
		s.formAhead(stream, maxItems, maxBytes, build, len(f.msg.Payload))
	}
	release()
	if err != nil || !ok {
		return Message{}, false, err
	}
	if s.fileOpen() {
		s.waitWritten(f)
	}
	s.awaitCover(f)
	return f.msg, true, nil
}

// Bounds of the messages one Form forms ahead (CommitInterval > 0): they
// are written by the same commit and published from the outbox.
const (
	formAheadMax   = 64
	formAheadBytes = 4 << 20
)

// formAhead forms further messages of stream from what is pending, so
// that one commit carries them all; the publisher takes them from the
// outbox (Outbox) once that commit is written.
func (s *Store) formAhead(stream Stream, maxItems, maxBytes int, build BuildFunc, size int) {
	for n := 1; n < formAheadMax && size < formAheadBytes; n++ {
		f, ok, err := s.formOne(stream, maxItems, maxBytes, build)
		if err != nil || !ok {
			return // the error, if lasting, is the next Form's to return
		}
		size += len(f.msg.Payload)
	}
}

// formOne forms one message (see Form) and adds it to the lane, without
// waiting for the disk.
func (s *Store) formOne(stream Stream, maxItems, maxBytes int, build BuildFunc) (*formed, bool, error) {
	for dead := 0; dead < maxDeadPerForm; {
		items, bad, err := s.pick(stream, maxItems, maxBytes)
		if err != nil {
			return nil, false, fmt.Errorf("buffer %s: form %s message: %w", s.path, stream, err)
		}
		if len(items) == 0 {
			return nil, false, nil
		}
		if bad == 0 {
			s.deadLetter(stream, items[0], "malformed record in the buffer file")
			dead++
			continue
		}
		if bad > 0 {
			items = items[:bad]
		}
		head := Head{Seq: s.peekSeq(stream), Epoch: s.Epoch()}
		payload, berr := buildSafe(build, head, items)
		if berr != nil && len(items) > 1 {
			// Find the first record that does not encode on its own.
			first := len(items)
			for j := range items {
				if _, e := buildSafe(build, head, items[j:j+1]); e != nil {
					first = j
					break
				}
			}
			if first == 0 {
				s.deadLetter(stream, items[0], berr.Error())
				dead++
				continue
			}
			items = items[:first]
			payload, berr = buildSafe(build, head, items)
		}
		if berr != nil {
			s.deadLetter(stream, items[0], berr.Error())
			dead++
			continue
		}
		f, ok, err := s.addFormed(stream, head.Seq, payload, items)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			continue // the writer evicted some of them meanwhile: pick again
		}
		return f, true, nil
	}
	return nil, false, nil
}

func (s *Store) isReadOnly() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readOnly
}

func (s *Store) peekSeq(stream Stream) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lanes[stream].nextSeq
}

// waitWritten waits until f is written, at most until the write under
// way (or, if none, one starting at the end of the commit window) has
// taken StallAfter.
func (s *Store) waitWritten(f *formed) {
	deadline := time.Now().Add(s.opts.CommitInterval + StallAfter)
	if t := s.roundStart.Load(); t != 0 {
		deadline = time.Unix(0, t).Add(StallAfter)
	}
	d := time.Until(deadline)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-f.done:
	case <-timer.C:
	}
}

// buildSafe runs build, turning a panic into an error.
func buildSafe(build BuildFunc, h Head, items []Item) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("encoding panicked: %v", r)
		}
	}()
	return build(h, items)
}

// pick returns the oldest pending records of stream not taken by a
// message: from the file if it holds any, else from memory; contiguous
// record numbers. bad is the index of the first record malformed in the
// file (-1: none).
func (s *Store) pick(stream Stream, maxItems, maxBytes int) (items []Item, bad int, err error) {
	for try := 0; ; try++ {
		s.mu.Lock()
		l := s.lanes[stream]
		taken, ver := append([]span(nil), l.taken...), l.version
		s.mu.Unlock()
		items, bad = nil, -1
		ferr := s.view(func(tx *bolt.Tx) error {
			items, bad = readPending(tx.Bucket(itemsBucket(stream)), taken, maxItems, maxBytes)
			return nil
		})
		if ferr != nil && !errors.Is(ferr, errNoDB) {
			return nil, -1, ferr
		}
		s.mu.Lock()
		if l.version != ver && try < 8 {
			s.mu.Unlock()
			continue // a record read was rewritten meanwhile: read again
		}
		items, bad = s.pickLocked(l, items, bad, maxItems, maxBytes)
		s.mu.Unlock()
		return items, bad, nil
	}
}

// pickLocked drops file items the writer took meanwhile, and picks from
// memory if the file holds none.
func (s *Store) pickLocked(l *lane, items []Item, bad, maxItems, maxBytes int) ([]Item, int) {
	for j, it := range items { // the writer may have evicted some meanwhile
		if l.isTaken(it.ID) {
			items = items[:j]
			break
		}
	}
	if bad >= len(items) {
		bad = -1
	}
	if len(items) > 0 {
		return items, bad
	}
	size := 0
	for _, r := range l.queued {
		if l.isTaken(r.rec) {
			if len(items) > 0 {
				break
			}
			continue
		}
		if len(items) > 0 && (r.rec != items[len(items)-1].ID+1 || len(items) >= maxItems ||
			(maxBytes > 0 && size+len(r.data) > maxBytes)) {
			break
		}
		size += len(r.data)
		// r.data is never changed once queued: shared, capped so that an
		// append by the caller cannot write into it.
		items = append(items, Item{ID: r.rec, TS: time.UnixMilli(r.ts), Data: r.data[:len(r.data):len(r.data)], Fresh: true})
	}
	return items, -1
}

// readPending reads the first pending items of ib outside taken, with
// contiguous keys, within the limits.
func readPending(ib *bolt.Bucket, taken []span, maxItems, maxBytes int) (items []Item, bad int) {
	bad = -1
	if ib == nil {
		return nil, -1
	}
	sort.Slice(taken, func(i, j int) bool { return taken[i].from < taken[j].from })
	c := ib.Cursor()
	k, v := c.First()
	size := 0
	for k != nil && len(items) < maxItems {
		rec := binary.BigEndian.Uint64(k)
		if sp, ok := takenAt(taken, rec); ok {
			if len(items) > 0 {
				break
			}
			k, v = c.Seek(u64key(sp.to + 1))
			continue
		}
		if len(items) > 0 && rec != items[len(items)-1].ID+1 {
			break
		}
		if len(v) < itemHdr {
			if bad < 0 {
				bad = len(items)
			}
			items = append(items, Item{ID: rec, Data: append([]byte(nil), v...)})
			break
		}
		d := v[itemHdr:]
		if len(items) > 0 && maxBytes > 0 && size+len(d) > maxBytes {
			break
		}
		size += len(d)
		items = append(items, Item{ID: rec, TS: time.UnixMilli(int64(binary.BigEndian.Uint64(v))), Data: append([]byte(nil), d...)})
		k, v = c.Next()
	}
	return items, bad
}

func takenAt(taken []span, r uint64) (span, bool) {
	for _, sp := range taken {
		if sp.has(r) {
			return sp, true
		}
	}
	return span{}, false
}

// addFormed records a message formed from items with seq, if none of
// them was taken meanwhile; after Close it fails with ErrClosed (Close has
// saved the numbers handed out).
func (s *Store) addFormed(stream Stream, seq uint64, payload []byte, items []Item) (*formed, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, ErrClosed
	}
	l := s.lanes[stream]
	first, last := items[0].ID, items[len(items)-1].ID
	for r := first; r <= last; r++ {
		if l.isTaken(r) {
			return nil, false, nil
		}
	}
	fromFile := true
	for _, r := range l.queued {
		if r.rec == first {
			fromFile = false
			break
		}
	}
	l.nextSeq = seq + 1
	f := &formed{msg: Message{Stream: stream, Seq: seq, Payload: payload, Items: len(items), OldestTS: items[0].TS, First: first, Last: last},
		done: make(chan struct{}), fromFile: fromFile}
	l.unwritten = append(l.unwritten, f)
	l.taken = append(l.taken, span{first, last})
	s.memBytes += int64(len(payload)) + recOverhead
	s.wakeLocked()
	return f, true, nil
}

func (s *Store) wakeLocked() {
	select {
	case s.work <- struct{}{}:
	default:
	}
}

// deadLetter moves a record that cannot be formed to the dead letters
// and queues the data_loss event that explains its gap in rec.
func (s *Store) deadLetter(stream Stream, it Item, reason string) {
	s.mu.Lock()
	l := s.lanes[stream]
	if l.isTaken(it.ID) {
		s.mu.Unlock()
		return
	}
	l.taken = append(l.taken, span{it.ID, it.ID})
	l.deadOps = append(l.deadOps, deadRec{rec: it.ID, ts: it.TS.UnixMilli(), data: it.Data, reason: reason})
	ts := it.TS.UnixMilli()
	detail := "moved to the dead letters: " + reason
	if ts <= 0 { // the sample time is unreadable too: the event's own time stands in
		ts, detail = s.opts.Now().UnixMilli(), detail+" (sample time unreadable)"
	}
	s.queueEventLocked(lossEvent(s.opts.Now().UnixMilli(), lossSpan{stream: stream, reason: ReasonUnreadable,
		sp: span{it.ID, it.ID}, n: 1, from: ts, to: ts, detail: detail}))
	s.wakeLocked()
	s.mu.Unlock()
	s.log.Error("buffer: record cannot be formed into a message; moved to the dead letters", "stream", stream, "rec", it.ID, "reason", reason)
}
