package store

import "time"

// A message may be published before it is written: from memory, while
// the disk stalls or the file cannot be used. After a crash the next
// start hands out numbers only above the saved high-water mark and the
// file's own counters, so such a message's seq, and the record numbers of
// its records that exist only in memory, must be covered by the mark, or
// a number a consumer has seen could be used again for other readings.
// The writer saves the mark before a commit that forms messages, but
// while it is blocked in a stalled commit it cannot; the marker, a
// goroutine of its own, saves it when a message about to be published
// from memory is not covered. Form and Outbox wait for that, at most
// StallAfter. When the mark cannot be saved (its save failed: Health
// reports it; or it has taken longer than StallAfter, the disk stalls),
// messages are published uncovered as they were before the marker: live
// data are not held back for it.

// coveredLocked reports whether f, formed but not yet written, may be
// published (Store.mu held): the saved mark covers its seq and every rec
// handed out so far in every stream (a data_loss event names the recs of
// another stream, shed from memory), or the mark cannot be saved now. A
// mark of a later epoch counts (a reset saved it before the store took
// its epoch; it never lowers a number, hwmFile.saveLocked).
func (s *Store) coveredLocked(f *formed) bool {
	if s.markStuckLocked() {
		return true
	}
	m := s.hwm.cover.Load()
	if m == nil || m.Epoch < s.epoch || f.msg.Seq > m.Streams[string(f.msg.Stream)].Seq {
		return false
	}
	for _, name := range Streams {
		if s.lanes[name].nextRec-1 > m.Streams[string(name)].Rec {
			return false
		}
	}
	return true
}

// markStuckLocked reports whether the last save of the mark failed (the
// writer retries it) or the marker's save under way has taken longer
// than StallAfter (Store.mu held).
func (s *Store) markStuckLocked() bool {
	return s.hwmErr != nil || !s.markSince.IsZero() && time.Since(s.markSince) > StallAfter
}

// requestMark asks the marker to save the mark (never waits).
func (s *Store) requestMark() {
	select {
	case s.markReq <- struct{}{}:
	default:
	}
}

// awaitCover waits, at most StallAfter, until f is written or the mark
// covers it (coveredLocked).
func (s *Store) awaitCover(f *formed) {
	var timer *time.Timer
	for {
		select {
		case <-f.done:
			return
		default:
		}
		s.mu.Lock()
		ok, marked := s.coveredLocked(f), s.marked
		s.mu.Unlock()
		if ok {
			return
		}
		s.requestMark()
		if timer == nil {
			timer = time.NewTimer(StallAfter)
			defer timer.Stop()
		}
		select {
		case <-f.done:
			return
		case <-marked:
		case <-timer.C:
			return
		}
	}
}

// marker saves the mark when asked, independently of the writer. After a
// failed save it waits RetryMin before it takes the next request (the
// writer retries a failed mark too).
func (s *Store) marker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.markReq:
		case <-s.quit:
			return
		}
		s.mu.Lock()
		s.markSince = time.Now()
		s.mu.Unlock()
		ok := s.saveHWM()
		s.mu.Lock()
		s.markSince = time.Time{}
		close(s.marked)
		s.marked = make(chan struct{})
		s.mu.Unlock()
		s.signal() // the publisher takes what Outbox now offers
		if ok {
			continue
		}
		select {
		case <-s.opts.After(s.opts.RetryMin):
		case <-s.quit:
			return
		}
	}
}
