package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

type kv struct{ k, v []byte }

type salvageResult struct {
	salvaged int64 // records copied (items, dead letters, and the records of outbox messages)
	lost     int64 // records the damaged file counted that could not be read; -1: unknown
}

// salvage copies the readable records of the damaged file at moved into
// the fresh file dst, bucket by bucket and record by record, each read
// under guard (a damaged page loses its own records only: the walk goes
// on after it). Record numbers and seqs are kept, so a salvaged message
// is an exact repeat of what the platform may already have. st is raised
// to the damaged file's sequences and its epoch set to the new one.
func (s *Store) salvage(moved string, dst *bolt.DB, st *hwmState) salvageResult {
	res := salvageResult{lost: -1}
	if st.Streams == nil {
		st.Streams = map[string]hwmStream{}
	}
	var src *bolt.DB
	opened := false
	err := guard(func() error {
		var err error
		src, err = bolt.Open(moved, 0o600, &bolt.Options{ReadOnly: true, Timeout: s.opts.LockTimeout})
		opened = true
		return err
	})
	if !opened {
		closeLeaked(moved)
	}
	var old struct {
		c           counters
		epoch, mono uint64
		ok          bool
	}
	data := map[string][]kv{}
	seqs := map[string]uint64{}
	if err != nil {
		s.log.Error("buffer: the damaged file cannot be opened at all; nothing salvaged", "path", moved, "err", err)
	} else {
		_ = guard(func() error {
			return src.View(func(tx *bolt.Tx) error {
				if m := tx.Bucket(bucketMeta); m != nil {
					old.c, old.epoch, old.mono, old.ok = loadCounters(m), getU64(m, keyEpoch), getU64(m, keyMono), true
					old.ok = !old.c.missingPerStrm
				}
				return nil
			})
		})
		for _, name := range Streams {
			h := st.Streams[string(name)]
			for _, b := range [][]byte{itemsBucket(name), outboxBucket(name), deadBucket(name)} {
				limit := max(h.Rec, h.Seq) + 1<<20
				kvs, seq := readBucket(src, b, limit)
				data[string(b)], seqs[string(b)] = kvs, seq
			}
		}
		_ = guard(src.Close)
	}
	st.Epoch = max(st.Epoch, old.epoch, 1) + 1

	var salvaged, expected int64
	err = guard(func() error {
		return dst.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			var c counters
			for i, name := range Streams {
				h := st.Streams[string(name)]
				ib, err1 := tx.CreateBucketIfNotExists(itemsBucket(name))
				ob, err2 := tx.CreateBucketIfNotExists(outboxBucket(name))
				db, err3 := tx.CreateBucketIfNotExists(deadBucket(name))
				ab, err4 := tx.CreateBucketIfNotExists(ageBucket(name))
				if err := firstErr(err1, err2, err3, err4); err != nil {
					return err
				}
				var first uint64
				for _, r := range data[string(itemsBucket(name))] {
					if len(r.k) != keyLen || len(r.v) < itemHdr {
						continue
					}
					if err := ib.Put(r.k, r.v); err != nil {
						return err
					}
					rec := binary.BigEndian.Uint64(r.k)
					if first == 0 {
						first = rec
					}
					h.Rec = max(h.Rec, rec)
					c.items[i]++
					c.bytes += int64(len(r.k) + len(r.v))
					salvaged++
				}
				for _, r := range data[string(outboxBucket(name))] {
					if len(r.k) != keyLen || len(r.v) < outboxHdr {
						continue
					}
					seq, n := binary.BigEndian.Uint64(r.k), outboxItems(r.v)
					h.Seq = max(h.Seq, seq) // its seq may have been sent: never used again
					m, err := decodeOutbox(name, seq, r.v)
					first := m.First // a compressed record's, checked
					if err != nil {
						first, _ = zipFirst(r.v) // damaged past its header
					}
					if first > 0 && n > 0 {
						h.Rec = max(h.Rec, first+uint64(n)-1) // and its records' numbers
					}
					if err != nil {
						continue // a compressed payload that fails its check: lost, not salvaged
					}
					if err := ob.Put(r.k, r.v); err != nil {
						return err
					}
					c.outbox[i]++
					c.outrec[i] += n
					c.bytes += int64(len(r.k) + len(r.v))
					salvaged += n
				}
				for _, r := range data[string(deadBucket(name))] {
					if len(r.k) == keyLen && len(r.v) >= itemHdr+2 {
						if err := db.Put(r.k, r.v); err != nil {
							return err
						}
					}
				}
				h.Rec = max(h.Rec, seqs[string(itemsBucket(name))])
				h.Seq = max(h.Seq, seqs[string(outboxBucket(name))])
				if err := firstErr(ib.SetSequence(h.Rec), ob.SetSequence(h.Seq)); err != nil {
					return err
				}
				if first > 0 {
					if err := ab.Put(u64key(first), u64key(old.mono)); err != nil {
						return err
					}
				}
				st.Streams[string(name)] = h
				if old.ok {
					expected += old.c.items[i] + old.c.outrec[i]
					c.evicted[i] = old.c.evicted[i]
				}
			}
			c.store(meta)
			putU64(meta, keyEpoch, st.Epoch)
			putU64(meta, keyMono, old.mono)
			return nil
		})
	})
	if err != nil {
		s.log.Error("buffer: writing the salvaged records failed; the fresh file starts empty", "err", err)
		return res
	}
	res.salvaged = salvaged
	if old.ok {
		res.lost = max(0, expected-salvaged)
	}
	return res
}

// readBucket reads every record of bucket name, going on after a damaged
// page: when reading panics at key k, it probes for the lowest key above k
// that can be sought to again (each probe under guard) and continues from
// there. Keys are 8-byte numbers; limit bounds the probing.
func readBucket(db *bolt.DB, name []byte, limit uint64) (kvs []kv, seq uint64) {
	next := uint64(0)
	for tries := 0; tries < 64; tries++ {
		err := guard(func() error {
			return db.View(func(tx *bolt.Tx) error {
				b := tx.Bucket(name)
				if b == nil {
					return nil
				}
				seq = max(seq, b.Sequence())
				c := b.Cursor()
				for k, v := c.Seek(u64key(next)); k != nil; k, v = c.Next() {
					r := kv{append([]byte(nil), k...), append([]byte(nil), v...)}
					kvs = append(kvs, r)
					if len(k) == keyLen {
						next = binary.BigEndian.Uint64(k) + 1
					}
				}
				return nil
			})
		})
		if err == nil {
			return kvs, seq
		}
		// Find p > next with Seek(p) readable, doubling the step, then the
		// lowest such p.
		lo, step := next, uint64(1)
		hi := uint64(0)
		for lo+step <= limit {
			if probe(db, name, lo+step) {
				hi = lo + step
				break
			}
			lo += step
			step *= 2
		}
		if hi == 0 {
			return kvs, seq
		}
		for lo+1 < hi {
			mid := lo + (hi-lo)/2
			if probe(db, name, mid) {
				hi = mid
			} else {
				lo = mid
			}
		}
		next = hi
	}
	return kvs, seq
}

// probe reports whether seeking key k in bucket name and reading the
// record there works.
func probe(db *bolt.DB, name []byte, k uint64) bool {
	return guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				return fmt.Errorf("no bucket")
			}
			kk, v := b.Cursor().Seek(u64key(k))
			_ = append(append([]byte(nil), kk...), v...)
			return nil
		})
	}) == nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
