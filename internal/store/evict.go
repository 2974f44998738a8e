package store

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// EvictLogEvery bounds how often evictions are logged during a sustained
// overflow (every one is counted in a data_loss event regardless).
const EvictLogEvery = 10 * time.Second

// evictOrder is the eviction priority: telemetry first, alarms last.
var evictOrder = [...]Stream{Telemetry, Event, Alarm}

// candidate is a pending item eviction may drop.
type candidate struct {
	rec  uint64
	ts   int64
	size int64
}

// evictLocked enforces MaxAge (telemetry and events: commits older than
// MaxAge in run time; alarms never) then MaxBytes (telemetry first, then
// events, alarms only once no telemetry or event is left) inside tx, on
// pending items only: a formed message may already be on the wire. The
// byte cap evicts down to an eighth below it, so that a sustained
// overflow evicts in chunks. Each contiguous run evicted gets a data_loss
// record in the same transaction, naming the stream and the rec range.
func (s *Store) evictLocked(tx *bolt.Tx, sn *snapshot, c *counters, mono uint64) error {
	var spans []lossSpan
	if cutoff := int64(mono) - s.opts.MaxAge.Milliseconds(); cutoff > 0 {
		for _, name := range [...]Stream{Telemetry, Event} {
			upTo := ageLimit(tx.Bucket(ageBucket(name)), cutoff)
			if upTo <= 1 {
				continue
			}
			got, err := s.evictItems(tx, sn, name, c, func(cd candidate, _ int64) bool { return cd.rec < upTo }, ReasonMaxAge)
			if err != nil {
				return err
			}
			spans = append(spans, got...)
		}
	}
	if limit := s.limit(c.bytes); c.bytes > limit {
		target := limit - min(limit/8, 16<<20)
		for _, name := range evictOrder {
			if c.bytes <= target {
				break
			}
			need := c.bytes - target
			got, err := s.evictItems(tx, sn, name, c, func(_ candidate, freed int64) bool { return freed < need }, ReasonBufferFull)
			if err != nil {
				return err
			}
			spans = append(spans, got...)
		}
	}
	if len(spans) == 0 {
		return nil
	}
	now := s.opts.Now().UnixMilli()
	var evs []*record
	var total int64
	var detail []string
	eb := tx.Bucket(itemsBucket(Event))
	s.mu.Lock()
	el := s.lanes[Event]
	for _, ls := range spans {
		total += ls.n
		detail = append(detail, fmt.Sprintf("%s:%s=%d", ls.reason, ls.stream, ls.n))
		key := string(ls.stream) + "/" + ls.reason
		if ref := el.lastLoss[key]; ref != nil && ref.ls.sp.to+1 == ls.sp.from && !el.isTaken(ref.rec) && eb.Get(u64key(ref.rec)) != nil {
			// Extend the data_loss record still pending in the file (a
			// sustained overflow reports one event, not one per commit);
			// pinned until the commit is done, so Form does not send the
			// old text meanwhile.
			m := ref.ls
			m.sp.to, m.n, m.from, m.to = ls.sp.to, m.n+ls.n, min(m.from, ls.from), max(m.to, ls.to)
			b, err := marshalEvent(lossEvent(now, m))
			if err != nil {
				s.mu.Unlock()
				return err
			}
			el.taken = append(el.taken, span{ref.rec, ref.rec})
			sn.merged = append(sn.merged, merge{ref: ref, to: m, add: ls})
			evs = append(evs, &record{rec: ref.rec, ts: now, data: b, mono: int64(mono)})
			continue
		}
		b, err := marshalEvent(lossEvent(now, ls))
		if err != nil {
			s.mu.Unlock()
			return err
		}
		r := &record{rec: el.nextRec, ts: now, data: b, mono: int64(mono)}
		el.nextRec++
		evs = append(evs, r)
		sn.events = append(sn.events, r)
		sn.eventSpans = append(sn.eventSpans, ls)
	}
	s.mu.Unlock()
	for _, r := range evs {
		if err := putRecords(tx, Event, []*record{r}, mono, c); err != nil {
			return err
		}
	}
	s.evictUnlogged += total
	if t := time.Now(); t.Sub(s.evictLogAt) >= EvictLogEvery {
		s.log.Warn("buffer evicted records", "records", s.evictUnlogged, "detail", strings.Join(detail, " "))
		s.evictLogAt, s.evictUnlogged = t, 0
	}
	return nil
}

// ageLimit returns the first record number of the oldest commit not older
// than cutoff (run time, ms): records below it are too old. 0: none.
func ageLimit(ab *bolt.Bucket, cutoff int64) uint64 {
	var upTo uint64
	cur := ab.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if int64(binary.BigEndian.Uint64(v)) >= cutoff {
			return binary.BigEndian.Uint64(k)
		}
		upTo = ^uint64(0)
	}
	return upTo
}

// evictItems drops the oldest pending items of stream name while keep
// says so (given the bytes freed so far), skipping those taken by a
// message not yet written. It returns the contiguous runs dropped.
func (s *Store) evictItems(tx *bolt.Tx, sn *snapshot, name Stream, c *counters, more func(candidate, int64) bool, reason string) ([]lossSpan, error) {
	s.mu.Lock()
	taken := append([]span(nil), s.lanes[name].taken...)
	s.mu.Unlock()
	isTaken := func(r uint64) bool {
		for _, sp := range taken {
			if sp.has(r) {
				return true
			}
		}
		return false
	}
	ib := tx.Bucket(itemsBucket(name))
	var cands []candidate
	var freed int64
	cur := ib.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		cd := candidate{rec: binary.BigEndian.Uint64(k), size: int64(len(k) + len(v))}
		if len(v) >= itemHdr {
			cd.ts = int64(binary.BigEndian.Uint64(v))
		}
		if !more(cd, freed) {
			break
		}
		if isTaken(cd.rec) {
			continue
		}
		cands = append(cands, cd)
		freed += cd.size
	}
	if len(cands) == 0 {
		return nil, nil
	}
	// Form may have taken some meanwhile: those stay.
	var loss memLoss
	s.mu.Lock()
	l := s.lanes[name]
	var spans []span
	for _, cd := range cands {
		if l.isTaken(cd.rec) {
			continue
		}
		loss.add(name, reason, cd.rec, cd.ts)
	}
	for _, ls := range loss.spans {
		spans = append(spans, ls.sp)
	}
	l.taken = append(l.taken, spans...)
	s.mu.Unlock()
	sn.evicted[name] = append(sn.evicted[name], spans...)
	i := streamIndex(name)
	for _, sp := range spans {
		n := c.items[i]
		if err := deleteItems(ib, i, sp, c); err != nil {
			return nil, err
		}
		c.evicted[i] += n - c.items[i]
	}
	return loss.spans, nil
}
