package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// Outbox returns up to max formed, unacknowledged messages of stream with
// a seq greater than after, in seq order (max <= 0: all): those in the
// file and those not yet written. It waits, at most StallAfter, until the
// high-water mark covers the first of those not yet written (marker.go).
func (s *Store) Outbox(stream Stream, after uint64, max int) ([]Message, error) {
	if streamIndex(stream) < 0 {
		return nil, fmt.Errorf("buffer: unknown stream %q", stream)
	}
	s.awaitOutboxCover(stream, after)
	s.mu.Lock()
	l := s.lanes[stream]
	var mem []Message
	for _, f := range l.unwritten {
		if f.msg.Seq > after {
			mem = append(mem, f.msg)
		}
	}
	acked := make(map[uint64]bool, len(l.acked))
	for k := range l.acked {
		acked[k] = true
	}
	s.mu.Unlock()
	var out []Message
	var bad []unreadableMsg
	defer func() { s.noteUnreadable(stream, bad) }()
	err := s.view(func(tx *bolt.Tx) error {
		ob := tx.Bucket(outboxBucket(stream))
		if ob == nil {
			return nil
		}
		c := ob.Cursor()
		for k, v := c.Seek(u64key(after + 1)); k != nil && (max <= 0 || len(out) < max); k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if acked[seq] {
				continue
			}
			m, err := decodeOutbox(stream, seq, v)
			if err != nil {
				bad = append(bad, badOutbox(seq, v, err)) // not sent: removed and reported (noteUnreadable)
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNoDB) && len(mem) == 0 {
		return nil, fmt.Errorf("buffer %s: read %s outbox: %w", s.path, stream, err)
	}
	seen := map[uint64]bool{}
	for _, m := range out {
		seen[m.Seq] = true
	}
	for _, m := range mem {
		if !seen[m.Seq] && !acked[m.Seq] {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// Ack removes the message (stream, seq) after its PUBACK, without waiting
// for the disk: Outbox no longer offers it, and the removal rides on the
// next commit (with a CommitInterval and nothing else to write, it is
// written AckFlushAfter later; until then a crash means the message is
// sent again, byte for byte, under its seq). Acking a seq that is not
// there (already acked) is not an error.
func (s *Store) Ack(stream Stream, seq uint64) error {
	if streamIndex(stream) < 0 {
		return fmt.Errorf("buffer: unknown stream %q", stream)
	}
	var dones []func(error)
	s.mu.Lock()
	l := s.lanes[stream]
	idx := slices.IndexFunc(l.unwritten, func(f *formed) bool { return f.msg.Seq == seq })
	switch {
	case idx >= 0 && !l.unwritten[idx].inFlight:
		// Never written: it leaves memory, and so do its records if they
		// are not in the file either.
		f := l.unwritten[idx]
		l.unwritten = slices.Delete(l.unwritten, idx, idx+1)
		s.memBytes -= int64(len(f.msg.Payload)) + recOverhead
		closeOnce(f.done)
		sp := span{f.msg.First, f.msg.Last}
		inFile := f.fromFile
		var dropped uint64
		keep := l.queued[:0]
		for _, r := range l.queued {
			if sp.has(r.rec) && !r.inFlight {
				s.memBytes -= r.size()
				dropped++
				if r.done != nil {
					dones = append(dones, r.done)
				}
				continue
			}
			if sp.has(r.rec) {
				inFile = true // being written now
			}
			keep = append(keep, r)
		}
		if dropped < sp.to-sp.from+1 {
			inFile = true // some were written since the message was formed
		}
		clear(l.queued[len(keep):])
		l.queued = keep
		if inFile {
			l.delOps = append(l.delOps, sp)
		} else {
			l.untake(sp)
		}
	case s.readOnly:
	default:
		l.ackOps = append(l.ackOps, seq)
		l.acked[seq] = true
	}
	s.mu.Unlock()
	for _, d := range dones {
		d(nil)
	}
	s.wake()
	return nil
}

// LastID returns the record number of the last record accepted on stream
// (0: none yet). Records numbered up to it were accepted before the call;
// the publisher uses it to tell history (buffered while the link was
// down) from live data.
func (s *Store) LastID(stream Stream) (uint64, error) {
	if streamIndex(stream) < 0 {
		return 0, fmt.Errorf("buffer: unknown stream %q", stream)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lanes[stream].nextRec - 1, nil
}

// awaitOutboxCover waits (awaitCover) for the first message of stream
// after seq that is not written and not covered by the mark. Offering
// nothing instead would let the publisher's next Form send a later seq
// first, and the held one never (it remembers the last seq sent).
func (s *Store) awaitOutboxCover(stream Stream, after uint64) {
	s.mu.Lock()
	var first *formed
	for _, f := range s.lanes[stream].unwritten {
		if f.msg.Seq > after && !s.coveredLocked(f) {
			first = f
			break
		}
	}
	s.mu.Unlock()
	if first != nil {
		s.awaitCover(first)
	}
}
