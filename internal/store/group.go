package store

import "time"

// Group commit (Options.CommitInterval): the writer gathers what arrives
// within CommitInterval after the first pending item into one fsync'd
// transaction. What is waiting decides how soon the next round runs:
//
//	urgent   alarm and event records and messages  → at once (the priority path)
//	regular  telemetry and statistics records and
//	         messages, dead letters                 → CommitInterval after the first
//	lazy     acks and the deletions they cause      → with the next commit, or
//	                                                  AckFlushAfter after the first
//	none                                            → no transaction at all
//
// With CommitInterval 0 everything is written at once, one round after
// another. While a window is open the publisher is told (Notify) and its
// Form of a telemetry or statistics message waits at the window's gate,
// then forms from everything gathered, so the messages ride on the commit
// of their own records instead of opening a window of their own.

// pendKind is how soon what is waiting must be written.
type pendKind int

const (
	pendNone pendKind = iota
	pendLazy
	pendRegular
	pendUrgent
)

// urgentStream reports whether records and messages of stream are written
// at once, whatever CommitInterval says: alarms and events.
func urgentStream(st Stream) bool { return st == Alarm || st == Event }

// pendingKind classifies what is waiting to be written.
func (s *Store) pendingKind() pendKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pendNone
	for _, l := range s.lanes {
		mine := pendRegular
		if urgentStream(l.stream) {
			mine = pendUrgent
		}
		for _, r := range l.queued {
			if !r.inFlight {
				k = max(k, mine)
				break
			}
		}
		for _, f := range l.unwritten {
			if !f.inFlight {
				k = max(k, mine)
				break
			}
		}
		if len(l.deadOps)+len(l.dropMsgs) > 0 {
			k = max(k, pendRegular)
		}
		if len(l.ackOps)+len(l.delOps) > 0 {
			k = max(k, pendLazy)
		}
	}
	if s.gate != nil && s.forming > 0 {
		k = max(k, pendRegular) // a Form waits at the gate: the window must end
	}
	return k
}

// awaitRound waits until the next round is due: at once when urgent work
// is waiting (or CommitInterval is 0 and anything is), when the window
// opened by the first regular item ends, AckFlushAfter after acks alone,
// when Close was called or damage noted, or to retry a failed high-water
// mark. A compaction request is served meanwhile. Nothing waiting: no
// round.
func (s *Store) awaitRound() {
	var timer, again <-chan time.Time
	lazyTimer := false
	defer s.closeGate()
	s.mu.Lock()
	if s.hwmErr != nil { // try the high-water mark again even while idle
		again = s.opts.After(s.opts.RetryMin)
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		closing := s.closed
		s.mu.Unlock()
		if closing || s.damage.Load() != nil { // damage: the writer replaces the file first
			return
		}
		k := s.pendingKind()
		switch {
		case k == pendUrgent, k != pendNone && s.opts.CommitInterval <= 0:
			return
		case k == pendRegular && (timer == nil || lazyTimer):
			timer, lazyTimer = s.opts.After(s.opts.CommitInterval), false
			s.openGate()
			s.signal() // the publisher forms at the gate, from all the window gathers
		case k == pendLazy && timer == nil:
			timer, lazyTimer = s.opts.After(AckFlushAfter), true
		}
		select {
		case <-timer:
			return
		case <-again:
			return
		case <-s.work:
		case <-s.compactReq:
			db := s.currentDB()
			if _, _, err := s.maybeCompact(false); err != nil {
				s.log.Error("buffer compaction failed", "path", s.path, "err", err)
				if isDamage(err) {
					s.noteDamage(db, err)
				}
			}
		}
	}
}

// openGate opens the window's gate, where Form of a regular stream waits.
func (s *Store) openGate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
}

// closeGate ends the window: the Forms waiting at the gate go on, and the
// round waits (at most gateWait) until they have added their messages.
func (s *Store) closeGate() {
	s.mu.Lock()
	g := s.gate
	s.gate = nil
	s.mu.Unlock()
	if g == nil {
		return
	}
	close(g)
	var bound *time.Timer
	for {
		s.mu.Lock()
		n := s.forming
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if bound == nil {
			bound = time.NewTimer(gateWait)
			defer bound.Stop()
		}
		select {
		case <-s.formed:
		case <-bound.C:
			return // a slow build: its messages take the next round
		}
	}
}

// gateWait bounds how long a round waits for the Forms let through its
// gate (a build is pure and fast; this only guards against a slow one).
const gateWait = 50 * time.Millisecond

// atGate makes a Form of stream wait for the end of the commit window
// when records of the stream wait for that commit (it opens the window if
// the writer has not yet), so that the message carries them all and rides
// on the same commit. The
// returned release must be called once the Form has added its messages.
func (s *Store) atGate(stream Stream) (release func()) {
	if urgentStream(stream) || s.opts.CommitInterval <= 0 || !s.fileOpen() {
		return func() {}
	}
	s.mu.Lock()
	if !s.lanes[stream].hasQueued() {
		s.mu.Unlock()
		return func() {} // nothing of the stream waits for a commit: what it forms joins the next one
	}
	g := s.gate
	if g == nil {
		// Records of the stream wait for a window the writer has not
		// opened yet: open it, so they and the message ride on one commit.
		s.gate = make(chan struct{})
		g = s.gate
		s.wakeLocked()
	}
	s.forming++
	s.mu.Unlock()
	t := time.NewTimer(s.opts.CommitInterval + StallAfter) // the window ends long before, unless the writer is stuck
	select {
	case <-g:
	case <-t.C:
	}
	t.Stop()
	return func() {
		s.mu.Lock()
		s.forming--
		s.mu.Unlock()
		select {
		case s.formed <- struct{}{}:
		default:
		}
	}
}

// hasQueued reports whether records wait to be taken by a commit.
func (l *lane) hasQueued() bool {
	for _, r := range l.queued {
		if !r.inFlight {
			return true
		}
	}
	return false
}
