package store

import (
	"fmt"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// snapshot is what one writer round commits: records, formed messages,
// acks, deletions and dead letters taken from the lanes.
type snapshot struct {
	recs  map[Stream][]*record
	forms map[Stream][]*formed
	acks  map[Stream][]uint64
	dels  map[Stream][]span
	deads map[Stream][]deadRec
	drops map[Stream][]uint64 // damaged outbox records to delete
	more  bool                // records were left for the next round (MaxBatch)
	// set by the commit (evict.go): spans evicted and the data_loss
	// records created in the transaction.
	evicted    map[Stream][]span
	events     []*record  // data_loss records created
	eventSpans []lossSpan // what each of them reports
	merged     []merge    // data_loss records extended
}

// merge is a data_loss record extended by a commit.
type merge struct {
	ref *lossRef
	to  lossSpan // the record's new content
	add lossSpan // what this commit added
}

func (sn *snapshot) empty() bool {
	return len(sn.recs)+len(sn.forms)+len(sn.acks)+len(sn.dels)+len(sn.deads)+len(sn.drops) == 0
}

// writer is the single goroutine that writes the file: each round commits
// everything taken (group commit, one fsync), and between rounds it waits
// as Options.CommitInterval says (awaitRound, group.go): no transaction
// while nothing is waiting. While the file cannot be
// used it retries it with back-off; damage found by anyone makes it move
// the file aside and salvage it.
func (s *Store) writer() {
	defer s.wg.Done()
	debug.SetPanicOnFault(true) // this goroutine only ever touches the mapping through guard, which also sets it
	backoff := s.opts.RetryMin
	var retry *time.Timer
	retryC := func() <-chan time.Time {
		if retry == nil {
			return nil
		}
		return retry.C
	}
	schedule := func() {
		if retry != nil {
			retry.Stop()
		}
		retry = time.NewTimer(backoff)
		backoff = min(2*backoff, s.opts.RetryMax)
	}
	retryDue := false
	closeFails := 0 // failed rounds since Close: Close tries the file once more, not forever
	if s.fileOpen() {
		s.awaitRound() // what Open queued is written as it would be later (at once if urgent)
	}
	for {
		closing := s.isClosed()
		if closing && closeFails >= 2 {
			s.dropHeld()
			return
		}
		if e := s.damage.Swap(nil); e != nil && e.db != nil && e.db == s.currentDB() {
			s.resetLive(e.err)
		}
		if !s.fileOpen() {
			if retryDue || closing || retry == nil {
				retryDue = false
				if s.tryReopen() {
					backoff = s.opts.RetryMin
					retry = nil
				} else {
					schedule()
					s.saveHWM() // seqs handed out from memory: keep the mark if its file can be written
				}
			}
			if !s.fileOpen() {
				s.signal() // the publisher forms from memory
				if closing {
					s.dropHeld()
					return
				}
				select {
				case <-s.work:
					time.Sleep(20 * time.Millisecond) // coalesce appends into fewer, larger messages
				case <-retryC():
					retryDue = true
				}
				continue
			}
		}
		db := s.currentDB()
		more, err := s.round()
		switch {
		case err == nil:
		case isDamage(err):
			s.noteDamage(db, err)
			if closing {
				closeFails++
			}
			continue
		default:
			if closing {
				closeFails++
			}
			s.mu.Lock()
			announce := s.fault == nil // not while a retry fails again
			s.mu.Unlock()
			if announce {
				s.log.Error("buffer commit failed: records are held in memory until the file can be written", "path", s.path, "err", err)
			}
			s.enterFault(err)
			if announce {
				s.mu.Lock()
				s.queueEventLocked(faultEvent(s.opts.Now(), err))
				s.mu.Unlock()
			}
			schedule()
			continue
		}
		if closing {
			if !more && !s.hasWork() {
				s.saveRunTime()
				return
			}
			continue
		}
		if more {
			continue
		}
		s.awaitRound()
	}
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Store) fileOpen() bool {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db != nil
}

// hasWork reports whether anything is left to write.
func (s *Store) hasWork() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lanes {
		if len(l.queued)+len(l.ackOps)+len(l.delOps)+len(l.deadOps)+len(l.dropMsgs) > 0 {
			return true
		}
		for _, f := range l.unwritten {
			if !f.inFlight {
				return true
			}
		}
	}
	return false
}

// tryReopen opens the file again after a fault; everything held in
// memory is written by the next round.
func (s *Store) tryReopen() bool {
	db, err := openChecked(s.path, s.opts)
	if err != nil && !isIOError(err) && err != errInUse {
		s.mu.Lock()
		st := s.hwmLocked()
		s.mu.Unlock()
		db, err = s.replaceDamaged(err, &st)
		if err == nil {
			err = s.attach(db, st)
			if err == nil {
				s.afterReset()
			}
		}
	} else if err == nil {
		s.mu.Lock()
		st := s.hwmLocked()
		s.mu.Unlock()
		err = s.attach(db, st)
		if err != nil {
			s.guardClose(db)
		}
	}
	if err != nil {
		s.mu.Lock()
		s.fault = err
		s.mu.Unlock()
		return false
	}
	s.saveHWM()
	return true // the fault ends with the first round written (recovered)
}

// resetLive replaces a file found damaged while running.
func (s *Store) resetLive(cause error) {
	s.dbMu.Lock()
	db := s.db
	s.db = nil
	s.dbMu.Unlock()
	s.guardClose(db)
	s.mu.Lock()
	st := s.hwmLocked()
	s.mu.Unlock()
	ndb, err := s.replaceDamaged(cause, &st)
	if err == nil {
		if err = s.attach(ndb, st); err != nil {
			s.guardClose(ndb)
		}
	}
	if err != nil {
		s.log.Error("buffer: no fresh file after a damaged one; records are held in memory", "err", err)
		s.enterFault(err)
		return
	}
	s.afterReset()
}

// afterReset queues the buffer_reset event of the last reset.
func (s *Store) afterReset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reset != nil {
		s.queueEventLocked(resetEvent(s.opts.Now(), s.reset))
	}
}

// saveRunTime records the run time in the file at Close, so the next run
// ages records from where this one stopped.
func (s *Store) saveRunTime() {
	err := s.update(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			putU64(meta, keyMono, uint64(max(0, s.ageNow())))
		}
		return nil
	})
	if err != nil {
		s.log.Warn("buffer: run time not saved at close", "err", err)
	}
}

// dropHeld fails what Close could not write.
func (s *Store) dropHeld() {
	s.mu.Lock()
	var dones []func(error)
	n := 0
	for _, l := range s.lanes {
		for _, r := range l.queued {
			n++
			if r.done != nil {
				dones = append(dones, r.done)
			}
		}
		l.queued = nil
	}
	fault := s.fault
	s.mu.Unlock()
	if n > 0 {
		s.log.Error("buffer closed with records only in memory (the file could not be written): they are lost", "records", n, "err", fault)
	}
	for _, d := range dones {
		d(ErrClosed)
	}
}

// round takes what is waiting and commits it in one transaction.
func (s *Store) round() (more bool, err error) {
	sn := s.take()
	s.mu.Lock()
	hwmFailing, recovering := s.hwmErr != nil, s.fault != nil
	s.mu.Unlock()
	if sn.empty() && !hwmFailing && !recovering {
		return false, nil // (after a fault, an empty commit proves the file works)
	}
	if len(sn.forms) > 0 || hwmFailing {
		s.saveHWM() // before any seq of this round can be published
	}
	s.roundStart.Store(time.Now().UnixNano())
	if s.opts.BeforeCommit != nil {
		s.opts.BeforeCommit() // a stall here counts as the disk's
	}
	err = s.commit(sn)
	s.roundStart.Store(0)
	s.finish(sn, err)
	if err != nil {
		return false, fmt.Errorf("buffer %s: commit: %w", s.path, err)
	}
	s.mu.Lock()
	if s.fault != nil { // the first round written after a fault
		since, held := time.Since(s.faultAt).Round(time.Second), s.memBytes
		s.fault = nil
		s.queueEventLocked(recoveredEvent(s.opts.Now(), since))
		s.log.Info("buffer file usable again: writing what memory held", "path", s.path, "after", since, "held_bytes", held)
	}
	s.mu.Unlock()
	s.signal()
	if len(sn.acks) > 0 && s.opts.CompactMinSize > 0 && s.fileBytes.Load()*CompactRatio < s.opts.CompactMinSize {
		select { // the backlog has drained: the writer checks the file size and compacts if worth it
		case s.compactReq <- struct{}{}:
		default:
		}
	}
	return sn.more, nil
}
