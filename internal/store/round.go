package store

// take marks what the round commits, alarms first, at most MaxBatch records.
func (s *Store) take() *snapshot {
	sn := &snapshot{recs: map[Stream][]*record{}, forms: map[Stream][]*formed{}, acks: map[Stream][]uint64{},
		dels: map[Stream][]span{}, deads: map[Stream][]deadRec{}, drops: map[Stream][]uint64{}, evicted: map[Stream][]span{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	budget := s.opts.MaxBatch
	for _, name := range Streams {
		l := s.lanes[name]
		var carriedTo uint64 // the last rec a message of this round may carry
		for _, f := range l.unwritten {
			carriedTo = max(carriedTo, f.msg.Last)
		}
		for _, r := range l.queued {
			if budget == 0 {
				// Past the budget only the records a message of this round
				// carries are taken (never put: unformed): left queued, they
				// were put by the next round after the message was written,
				// and formed again into a second message.
				if r.rec > carriedTo {
					sn.more = true
					break
				}
				if !carried(l.unwritten, r.rec) {
					sn.more = true
					continue
				}
			} else {
				budget--
			}
			r.inFlight = true
			sn.recs[name] = append(sn.recs[name], r)
		}
		for _, f := range l.unwritten {
			if !f.inFlight {
				f.inFlight = true
				sn.forms[name] = append(sn.forms[name], f)
			}
		}
		if len(l.ackOps) > 0 {
			sn.acks[name], l.ackOps = l.ackOps, nil
		}
		if len(l.delOps) > 0 {
			sn.dels[name], l.delOps = l.delOps, nil
		}
		if len(l.deadOps) > 0 {
			sn.deads[name], l.deadOps = l.deadOps, nil
		}
		if len(sn.recs[name]) == 0 {
			delete(sn.recs, name)
		}
		if len(sn.forms[name]) == 0 {
			delete(sn.forms, name)
		}
	}
	if !s.lanes[Event].hasQueuedLocked() {
		// A damaged message's data_loss record (queued before its drop)
		// is in this round: a crash cannot leave the message removed and
		// never reported.
		for _, name := range Streams {
			if l := s.lanes[name]; len(l.dropMsgs) > 0 {
				sn.drops[name], l.dropMsgs = l.dropMsgs, nil
			}
		}
	}
	return sn
}

// carried reports whether one of forms carries record rec.
func carried(forms []*formed, rec uint64) bool {
	for _, f := range forms {
		if rec >= f.msg.First && rec <= f.msg.Last {
			return true
		}
	}
	return false
}

// finish applies a round's outcome to the lanes: on success what was
// written leaves memory and the waiters are told; on failure everything
// stays for the next try, and the round's evictions become deletions to
// redo and its data_loss records are held in memory.
func (s *Store) finish(sn *snapshot, err error) {
	var dones []func(error)
	s.mu.Lock()
	s.flightDB, s.flightTx = nil, 0
	s.rounds++
	for name, recs := range sn.recs {
		l := s.lanes[name]
		if err != nil {
			for _, r := range recs {
				r.inFlight = false
			}
			continue
		}
		keep := l.queued[:0]
		for _, r := range l.queued {
			if r.inFlight {
				s.memBytes -= r.size()
				if r.done != nil {
					dones = append(dones, r.done)
				}
				continue
			}
			keep = append(keep, r)
		}
		clear(l.queued[len(keep):])
		l.queued = keep
	}
	for name, forms := range sn.forms {
		l := s.lanes[name]
		for _, f := range forms {
			f.inFlight = false
			if err != nil {
				continue
			}
			for i, u := range l.unwritten {
				if u == f {
					l.unwritten = append(l.unwritten[:i], l.unwritten[i+1:]...)
					s.memBytes -= int64(len(f.msg.Payload)) + recOverhead
					break
				}
			}
			l.untake(span{f.msg.First, f.msg.Last})
			closeOnce(f.done)
		}
	}
	for name, acks := range sn.acks {
		l := s.lanes[name]
		if err != nil {
			l.ackOps = append(acks, l.ackOps...)
			continue
		}
		for _, seq := range acks {
			delete(l.acked, seq)
		}
	}
	for name, dels := range sn.dels {
		l := s.lanes[name]
		if err != nil {
			l.delOps = append(dels, l.delOps...)
			continue
		}
		for _, d := range dels {
			l.untake(d)
		}
	}
	for name, drops := range sn.drops {
		if err != nil {
			l := s.lanes[name]
			l.dropMsgs = append(drops, l.dropMsgs...)
		}
	}
	for name, deads := range sn.deads {
		l := s.lanes[name]
		if err != nil {
			l.deadOps = append(deads, l.deadOps...)
			continue
		}
		for _, d := range deads {
			l.untake(span{d.rec, d.rec})
		}
	}
	for name, spans := range sn.evicted {
		l := s.lanes[name]
		if err != nil {
			l.delOps = append(l.delOps, spans...)
			continue
		}
		for _, sp := range spans {
			l.untake(sp)
		}
	}
	el := s.lanes[Event]
	for _, m := range sn.merged {
		el.untake(span{m.ref.rec, m.ref.rec})
		el.version++
		if err == nil {
			m.ref.ls = m.to
		} else { // report what this commit would have added in a record of its own
			s.queueEventLocked(lossEvent(s.opts.Now().UnixMilli(), m.add))
		}
	}
	if err != nil && len(sn.events) > 0 {
		s.requeueLocked(Event, sn.events)
	}
	if err == nil {
		for i, r := range sn.events {
			ls := sn.eventSpans[i]
			el.lastLoss[string(ls.stream)+"/"+ls.reason] = &lossRef{rec: r.rec, ls: ls}
		}
	}
	s.mu.Unlock()
	for _, d := range dones {
		d(nil)
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// hasQueuedLocked reports whether a record of the lane waits that this
// round did not take (Store.mu held).
func (l *lane) hasQueuedLocked() bool {
	for _, r := range l.queued {
		if !r.inFlight {
			return true
		}
	}
	return false
}
