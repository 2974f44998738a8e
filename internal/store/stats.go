package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// StreamStats describes one stream.
type StreamStats struct {
	Pending int       // records not yet in a message (in the file or only in memory)
	Outbox  int       // messages formed, waiting for a PUBACK
	Memory  int       // records and messages held only in memory (not yet written)
	Dead    int       // records in the dead letters
	LastSeq uint64    // last message seq assigned (0: none yet)
	LastRec uint64    // last record number assigned (0: none yet)
	Oldest  time.Time // sample time of the oldest record (zero if empty)
	Evicted uint64    // records dropped by the file's eviction since the file was created
}

// Stats is a snapshot of the buffer for health reporting.
type Stats struct {
	Streams     map[Stream]StreamStats
	Oldest      time.Time // oldest sample time over all streams (zero if empty)
	Bytes       int64     // accounted bytes in the file (the MaxBytes measure)
	FileSize    int64     // size of the bbolt file on disk
	MemoryBytes int64     // bytes held in memory (the QueueBytes measure)
	Epoch       uint64
	Fault       string // why the file cannot be written ("" if it can)
}

// Depth returns the records and messages waiting over all streams.
func (st Stats) Depth() (pending, outbox int) {
	for _, s := range st.Streams {
		pending += s.Pending
		outbox += s.Outbox
	}
	return pending, outbox
}

// Stats returns the current depth of every stream, from the file (if it
// can be read) and memory. The records and messages of a commit under way
// are counted once: in the file if the file read saw that commit, else in
// memory (the read is taken again if a round finished meanwhile).
func (s *Store) Stats() (Stats, error) {
	var st Stats
	for try := 0; ; try++ {
		s.mu.Lock()
		rounds := s.rounds
		s.mu.Unlock()
		var readDB *bolt.DB
		readTx := 0
		st = Stats{Streams: map[Stream]StreamStats{}}
		err := s.view(func(tx *bolt.Tx) error {
			readDB, readTx = tx.DB(), tx.ID()
			return s.fileStats(tx, &st)
		})
		if err != nil && !errors.Is(err, errNoDB) {
			return Stats{}, fmt.Errorf("buffer %s: stats: %w", s.path, err)
		}
		s.mu.Lock()
		if s.rounds != rounds && try < 4 {
			s.mu.Unlock()
			continue // a round finished during the read: the file and memory may disagree
		}
		// The commit under way is in what the file read saw only if the
		// read began after it (bbolt: a read's ID is the last committed
		// write's).
		seen := s.flightDB != nil && s.flightDB == readDB && readTx >= s.flightTx
		s.memStatsLocked(&st, seen)
		s.mu.Unlock()
		break
	}
	if fi, err := os.Stat(s.path); err == nil && fi.Mode().IsRegular() {
		st.FileSize = fi.Size()
	}
	return st, nil
}

// fileStats reads the file's part of Stats.
func (s *Store) fileStats(tx *bolt.Tx, st *Stats) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return nil
	}
	c := loadCounters(meta)
	st.Bytes = c.bytes
	st.FileSize = tx.Size()
	for i, name := range Streams {
		ss := StreamStats{Pending: int(c.items[i]), Outbox: int(c.outbox[i]), Evicted: uint64(c.evicted[i])}
		if c.missingPerStrm { // a read-only look at a file from before the counters
			ss.Pending, ss.Outbox = tx.Bucket(itemsBucket(name)).Stats().KeyN, tx.Bucket(outboxBucket(name)).Stats().KeyN
		}
		if db := tx.Bucket(deadBucket(name)); db != nil {
			ss.Dead = db.Stats().KeyN
		}
		for _, b := range []*bolt.Bucket{tx.Bucket(outboxBucket(name)), tx.Bucket(itemsBucket(name))} {
			if b == nil {
				continue
			}
			if _, v := b.Cursor().First(); len(v) >= 8 {
				ss.Oldest = time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
				break
			}
		}
		st.Streams[name] = ss
	}
	return nil
}

// memStatsLocked adds memory's part of Stats. seen: the file read saw the
// commit under way, so what it takes (inFlight) is counted from the file.
func (s *Store) memStatsLocked(st *Stats, seen bool) {
	st.MemoryBytes, st.Epoch = s.memBytes, s.epoch
	if s.fault != nil {
		st.Fault = s.fault.Error()
	}
	for _, name := range Streams {
		l := s.lanes[name]
		ss := st.Streams[name]
		for _, r := range l.queued {
			if !r.inFlight || !seen {
				ss.Memory++
				if !l.isTaken(r.rec) {
					ss.Pending++
				}
			}
		}
		for _, f := range l.unwritten {
			ss.Memory++
			if !f.inFlight || !seen {
				ss.Outbox++
			}
		}
		ss.Outbox = max(0, ss.Outbox-len(l.acked)) // acked, the removal not yet written
		if len(l.queued) > 0 {
			if o := time.UnixMilli(l.queued[0].ts); ss.Oldest.IsZero() || o.Before(ss.Oldest) {
				ss.Oldest = o
			}
		}
		ss.LastSeq, ss.LastRec = l.nextSeq-1, l.nextRec-1
		if !ss.Oldest.IsZero() && (st.Oldest.IsZero() || ss.Oldest.Before(st.Oldest)) {
			st.Oldest = ss.Oldest
		}
		st.Streams[name] = ss
	}
}

// Pending returns up to max pending records (not yet formed into a
// message) of stream numbered above after, in record order (max <= 0:
// all), from the file and memory. With Outbox it gives everything the
// buffer holds, for export.
func (s *Store) Pending(stream Stream, after uint64, max int) ([]Item, error) {
	if streamIndex(stream) < 0 {
		return nil, fmt.Errorf("buffer: unknown stream %q", stream)
	}
	var out []Item
	err := s.view(func(tx *bolt.Tx) error {
		ib := tx.Bucket(itemsBucket(stream))
		if ib == nil {
			return nil
		}
		c := ib.Cursor()
		for k, v := c.Seek(u64key(after + 1)); k != nil && (max <= 0 || len(out) < max); k, v = c.Next() {
			it := Item{ID: binary.BigEndian.Uint64(k)}
			if len(v) >= itemHdr {
				it.TS, it.Data = time.UnixMilli(int64(binary.BigEndian.Uint64(v))), append([]byte(nil), v[itemHdr:]...)
			}
			out = append(out, it)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNoDB) {
		return nil, fmt.Errorf("buffer %s: read %s pending: %w", s.path, stream, err)
	}
	seen := map[uint64]bool{}
	for _, it := range out {
		seen[it.ID] = true
	}
	s.mu.Lock()
	l := s.lanes[stream]
	for _, r := range l.queued {
		if r.rec > after && !seen[r.rec] && !l.isTaken(r.rec) {
			out = append(out, Item{ID: r.rec, TS: time.UnixMilli(r.ts), Data: append([]byte(nil), r.data...)})
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// DeadRecord is a record moved to the dead letters: it could not be formed
// into a message.
type DeadRecord struct {
	Stream Stream
	Rec    uint64
	TS     time.Time // sample time
	Reason string
	Data   []byte // the record as buffered
}

// Dead returns up to max dead letters of stream numbered above after, in
// record order (max <= 0: all), written or waiting to be.
func (s *Store) Dead(stream Stream, after uint64, max int) ([]DeadRecord, error) {
	if streamIndex(stream) < 0 {
		return nil, fmt.Errorf("buffer: unknown stream %q", stream)
	}
	var out []DeadRecord
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(deadBucket(stream))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(u64key(after + 1)); k != nil && (max <= 0 || len(out) < max); k, v = c.Next() {
			if len(v) < itemHdr+2 {
				continue
			}
			n := int(binary.BigEndian.Uint16(v[8:]))
			if len(v) < itemHdr+2+n {
				continue
			}
			out = append(out, DeadRecord{Stream: stream, Rec: binary.BigEndian.Uint64(k), TS: time.UnixMilli(int64(binary.BigEndian.Uint64(v))),
				Reason: string(v[10 : 10+n]), Data: append([]byte(nil), v[10+n:]...)})
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNoDB) {
		return nil, fmt.Errorf("buffer %s: read %s dead letters: %w", s.path, stream, err)
	}
	seen := map[uint64]bool{}
	for _, d := range out {
		seen[d.Rec] = true
	}
	s.mu.Lock()
	for _, d := range s.lanes[stream].deadOps {
		if d.rec > after && !seen[d.rec] {
			out = append(out, DeadRecord{Stream: stream, Rec: d.rec, TS: time.UnixMilli(d.ts), Reason: d.reason, Data: append([]byte(nil), d.data...)})
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Rec < out[j].Rec })
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out, nil
}
