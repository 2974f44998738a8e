package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hazmon/hazmon/internal/contract"
)

// Eviction reasons carried in the data_loss event.
// EvictLogEvery bounds how often evictions are logged during a sustained
// overflow (every one is counted in the data_loss event regardless).
const EvictLogEvery = 10 * time.Second

const (
	ReasonBufferFull = "buffer_full" // MaxBytes reached: oldest records dropped
	ReasonMaxAge     = "max_age"     // records older than MaxAge dropped
)

// evictOrder is the eviction priority: telemetry first, alarms last.
var evictOrder = [...]Stream{Telemetry, Event, Alarm}

type lossTally struct {
	from, to int64
	n        map[Stream]int64
}

func (l *lossTally) add(s Stream, ts int64) {
	if l.n == nil {
		l.n = map[Stream]int64{}
		l.from, l.to = ts, ts
	}
	l.n[s]++
	l.from, l.to = min(l.from, ts), max(l.to, ts)
}

func (l *lossTally) total() int64 {
	var t int64
	for _, n := range l.n {
		t += n
	}
	return t
}

// evictLocked enforces MaxAge then MaxBytes inside tx, pending items only
// (formed messages are never dropped: they may already be on the wire).
// For each reason that evicted something it appends one data_loss record
// to the event stream and adds to the persistent eviction counters.
func (s *Store) evictLocked(tx *bolt.Tx) (evicted int64, err error) {
	meta := tx.Bucket(bucketMeta)
	now := s.opts.Now()
	cutoff := now.Add(-s.opts.MaxAge).UnixMilli()
	bytes := int64(getU64(meta, keyBytes))

	var age, full lossTally
	for _, st := range evictOrder {
		c := tx.Bucket(itemsBucket(st)).Cursor()
		for k, v := c.First(); k != nil; k, v = c.First() {
			ts := int64(binary.BigEndian.Uint64(v))
			if ts >= cutoff {
				break
			}
			bytes -= int64(keyLen + len(v))
			if err := c.Delete(); err != nil {
				return 0, err
			}
			age.add(st, ts)
		}
	}
	limit := s.limit(bytes)
	for _, st := range evictOrder {
		if bytes <= limit {
			break
		}
		c := tx.Bucket(itemsBucket(st)).Cursor()
		for k, v := c.First(); k != nil && bytes > limit; k, v = c.First() {
			bytes -= int64(keyLen + len(v))
			if err := c.Delete(); err != nil {
				return 0, err
			}
			full.add(st, int64(binary.BigEndian.Uint64(v)))
		}
	}
	for _, l := range []struct {
		t      *lossTally
		reason string
	}{{&age, ReasonMaxAge}, {&full, ReasonBufferFull}} {
		n := l.t.total()
		if n == 0 {
			continue
		}
		evicted += n
		var detail []string
		for _, st := range Streams {
			if c := l.t.n[st]; c > 0 {
				detail = append(detail, fmt.Sprintf("%s=%d", st, c))
				key := append(append([]byte(nil), keyEvicted...), st...)
				putU64(meta, key, getU64(meta, key)+uint64(c))
			}
		}
		b := tx.Bucket(itemsBucket(Event))
		// Under a sustained overflow every commit evicts: merge into the
		// data_loss record still waiting in the event queue, if any, so
		// the reports never crowd out what is left.
		lossKey := []byte("loss/" + l.reason)
		from, to, total := l.t.from, l.t.to, n
		if id := meta.Get(lossKey); id != nil {
			if old := b.Get(id); old != nil {
				var prev contract.Event
				if err := json.Unmarshal(old[itemHdr:], &prev); err == nil {
					from, to, total = min(from, prev.FromTS), max(to, prev.ToTS), total+prev.Readings
					detail = mergeDetail(prev.Detail, detail)
					bytes -= int64(keyLen + len(old))
					if err := b.Delete(id); err != nil {
						return 0, err
					}
				}
			}
		}
		ev, err := dataLossEvent(now, from, to, total, l.reason, strings.Join(detail, " "))
		if err != nil {
			return 0, err
		}
		id, err := b.NextSequence()
		if err != nil {
			return 0, err
		}
		v := make([]byte, itemHdr+len(ev))
		binary.BigEndian.PutUint64(v, uint64(now.UnixMilli()))
		copy(v[itemHdr:], ev)
		if err := b.Put(u64key(id), v); err != nil {
			return 0, err
		}
		if err := meta.Put(lossKey, u64key(id)); err != nil {
			return 0, err
		}
		bytes += int64(keyLen + len(v))
		// A sustained overflow evicts on every commit: warn at most once
		// per EvictLogEvery, with the count since the last warning. Every
		// record is still counted in the data_loss event.
		s.evictUnlogged += n
		if now := time.Now(); now.Sub(s.evictLogAt) >= EvictLogEvery {
			s.log.Warn("buffer evicted records", "reason", l.reason, "records", s.evictUnlogged, "detail", strings.Join(detail, " "),
				"from", time.UnixMilli(l.t.from).UTC(), "to", time.UnixMilli(l.t.to).UTC())
			s.evictLogAt, s.evictUnlogged = now, 0
		}
	}
	putU64(meta, keyBytes, uint64(max(0, bytes)))
	return evicted, nil
}

// StreamStats describes one stream.
type StreamStats struct {
	Pending int       // items not yet in a message
	Outbox  int       // messages formed, waiting for a PUBACK
	LastSeq uint64    // last message seq assigned (0: none yet)
	Oldest  time.Time // sample time of the oldest record (zero if empty)
	Evicted uint64    // records dropped by eviction since the file was created
}

// Stats is a snapshot of the buffer for health reporting.
type Stats struct {
	Streams  map[Stream]StreamStats
	Oldest   time.Time // oldest sample time over all streams (zero if empty)
	Bytes    int64     // accounted bytes (the MaxBytes measure)
	FileSize int64     // size of the bbolt file on disk
}

// Depth returns the records and messages waiting over all streams.
func (st Stats) Depth() (pending, outbox int) {
	for _, s := range st.Streams {
		pending += s.Pending
		outbox += s.Outbox
	}
	return pending, outbox
}

// Stats returns the current depth of every stream. It walks the buckets'
// pages, so call it for health reporting (seconds), not per record.
func (s *Store) Stats() (Stats, error) {
	st := Stats{Streams: map[Stream]StreamStats{}}
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		st.Bytes = int64(getU64(meta, keyBytes))
		st.FileSize = tx.Size()
		for _, name := range Streams {
			ib, ob := tx.Bucket(itemsBucket(name)), tx.Bucket(outboxBucket(name))
			ss := StreamStats{
				Pending: ib.Stats().KeyN,
				Outbox:  ob.Stats().KeyN,
				LastSeq: ob.Sequence(),
				Evicted: getU64(meta, append(append([]byte(nil), keyEvicted...), name...)),
			}
			for _, b := range []*bolt.Bucket{ob, ib} {
				if _, v := b.Cursor().First(); v != nil {
					ss.Oldest = time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
					break
				}
			}
			if !ss.Oldest.IsZero() && (st.Oldest.IsZero() || ss.Oldest.Before(st.Oldest)) {
				st.Oldest = ss.Oldest
			}
			st.Streams[name] = ss
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("buffer %s: stats: %w", s.path, err)
	}
	if fi, err := os.Stat(s.path); err == nil {
		st.FileSize = fi.Size()
	}
	return st, nil
}

// mergeDetail adds the per-stream counts "telemetry=N alarm=M" of prev to cur.
func mergeDetail(prev string, cur []string) []string {
	counts := map[string]int64{}
	for _, f := range append(strings.Fields(prev), cur...) {
		name, n, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		v, _ := strconv.ParseInt(n, 10, 64)
		counts[name] += v
	}
	var out []string
	for _, st := range Streams {
		if c := counts[string(st)]; c > 0 {
			out = append(out, fmt.Sprintf("%s=%d", st, c))
		}
	}
	return out
}
