package store

import (
	"encoding/binary"
	"errors"

	bolt "go.etcd.io/bbolt"
)

// update runs fn in a guarded write transaction (one fsync) on the file.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return errNoDB
	}
	db := s.db
	return guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			if s.opts.Fault != nil {
				if err := s.opts.Fault("commit"); err != nil {
					return err
				}
			}
			return fn(tx)
		})
	})
}

// commit writes a round in one transaction: records (in rec order, with
// one age entry per stream), formed messages (outbox record in, their
// records out), deletions, dead letters and acks; then eviction.
func (s *Store) commit(sn *snapshot) error {
	return s.update(func(tx *bolt.Tx) error {
		s.mu.Lock()
		s.flightDB, s.flightTx = tx.DB(), tx.ID()
		s.mu.Unlock()
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.Join(errDamaged, errors.New("no meta bucket"))
		}
		c := loadCounters(meta)
		mono := uint64(max(0, s.ageNow()))
		for name, recs := range sn.recs {
			// Records a message of this same round carries are not put
			// only for the message's delete to take them out again (an
			// O(n) shift of the leaf per record): the outbox record holds
			// them. The bucket's sequence still counts them.
			if err := putRecords(tx, name, unformed(recs, sn.forms[name]), mono, &c); err != nil {
				return err
			}
			if err := raiseSequence(tx.Bucket(itemsBucket(name)), recs[len(recs)-1].rec); err != nil {
				return err
			}
		}
		for name, forms := range sn.forms {
			i := streamIndex(name)
			ob, ib := tx.Bucket(outboxBucket(name)), tx.Bucket(itemsBucket(name))
			for _, f := range forms {
				m := f.msg
				v := s.codec.value(m)
				if old := ob.Get(u64key(m.Seq)); old == nil {
					c.outbox[i]++
					c.outrec[i] += int64(m.Items)
					c.bytes += int64(keyLen + len(v))
				}
				if err := ob.Put(u64key(m.Seq), v); err != nil {
					return err
				}
				if m.Seq > ob.Sequence() {
					if err := ob.SetSequence(m.Seq); err != nil {
						return err
					}
				}
				if err := deleteItems(ib, i, span{m.First, m.Last}, &c); err != nil {
					return err
				}
			}
		}
		for name, dels := range sn.dels {
			ib := tx.Bucket(itemsBucket(name))
			for _, d := range dels {
				if err := deleteItems(ib, streamIndex(name), d, &c); err != nil {
					return err
				}
			}
		}
		for name, deads := range sn.deads {
			ib, db := tx.Bucket(itemsBucket(name)), tx.Bucket(deadBucket(name))
			for _, d := range deads {
				v := make([]byte, itemHdr+2+len(d.reason)+len(d.data))
				binary.BigEndian.PutUint64(v, uint64(d.ts))
				binary.BigEndian.PutUint16(v[8:], uint16(len(d.reason)))
				copy(v[10:], d.reason)
				copy(v[10+len(d.reason):], d.data)
				if err := db.Put(u64key(d.rec), v); err != nil {
					return err
				}
				if err := deleteItems(ib, streamIndex(name), span{d.rec, d.rec}, &c); err != nil {
					return err
				}
			}
		}
		for name, drops := range sn.drops { // found damaged
			if err := deleteOutbox(tx.Bucket(outboxBucket(name)), streamIndex(name), drops, &c); err != nil {
				return err
			}
		}
		for name, acks := range sn.acks {
			if err := deleteOutbox(tx.Bucket(outboxBucket(name)), streamIndex(name), acks, &c); err != nil {
				return err
			}
		}
		if err := s.evictLocked(tx, sn, &c, mono); err != nil {
			return err
		}
		for _, name := range Streams {
			if err := trimAge(tx, name); err != nil {
				return err
			}
		}
		putU64(meta, keyMono, mono)
		c.store(meta)
		s.fileBytes.Store(c.bytes)
		return nil
	})
}

// unformed returns the records of recs (in rec order) that none of forms
// carries; recs itself when that is all of them.
func unformed(recs []*record, forms []*formed) []*record {
	n := 0
	for _, r := range recs {
		if carried(forms, r.rec) {
			n++
		}
	}
	if n == 0 {
		return recs
	}
	out := make([]*record, 0, len(recs)-n)
	for _, r := range recs {
		if !carried(forms, r.rec) {
			out = append(out, r)
		}
	}
	return out
}

// raiseSequence sets the items bucket's sequence (the last rec written
// or carried by a message) to last if that is higher.
func raiseSequence(ib *bolt.Bucket, last uint64) error {
	if last > ib.Sequence() {
		return ib.SetSequence(last)
	}
	return nil
}

// putRecords writes records of one stream and the age entry of their
// commit.
func putRecords(tx *bolt.Tx, name Stream, recs []*record, mono uint64, c *counters) error {
	if len(recs) == 0 {
		return nil
	}
	i := streamIndex(name)
	ib := tx.Bucket(itemsBucket(name))
	for _, r := range recs {
		k := u64key(r.rec)
		v := make([]byte, itemHdr+len(r.data))
		binary.BigEndian.PutUint64(v, uint64(r.ts))
		copy(v[itemHdr:], r.data)
		if old := ib.Get(k); old != nil {
			c.bytes -= int64(keyLen + len(old))
			c.items[i]--
		}
		if err := ib.Put(k, v); err != nil {
			return err
		}
		c.bytes += int64(keyLen + len(v))
		c.items[i]++
	}
	if err := raiseSequence(ib, recs[len(recs)-1].rec); err != nil {
		return err
	}
	return tx.Bucket(ageBucket(name)).Put(u64key(recs[0].rec), u64key(mono))
}

// deleteItems deletes the pending items of stream index i in sp.
func deleteItems(ib *bolt.Bucket, i int, sp span, c *counters) error {
	if sp.from == 0 {
		return nil
	}
	// The keys are found first and deleted last to first: bbolt's delete
	// shifts the rest of the leaf, so front to back a range of n records
	// costs n²/2 moves, back to front only those after the range.
	var keys []uint64
	cur := ib.Cursor()
	for k, v := cur.Seek(u64key(sp.from)); k != nil && binary.BigEndian.Uint64(k) <= sp.to; k, v = cur.Next() {
		keys = append(keys, binary.BigEndian.Uint64(k))
		c.bytes -= int64(len(k) + len(v))
		c.items[i]--
	}
	var key [keyLen]byte
	for j := len(keys) - 1; j >= 0; j-- {
		binary.BigEndian.PutUint64(key[:], keys[j])
		if err := ib.Delete(key[:]); err != nil {
			return err
		}
	}
	return nil
}

// trimAge deletes the age entries at the front of the stream whose
// commits' records are all gone.
func trimAge(tx *bolt.Tx, name Stream) error {
	ab, ib := tx.Bucket(ageBucket(name)), tx.Bucket(itemsBucket(name))
	for n := 0; n < 64; n++ {
		c := ab.Cursor()
		k, _ := c.First()
		if k == nil {
			return nil
		}
		next, _ := c.Next()
		first, _ := ib.Cursor().Seek(k)
		if first != nil && (next == nil || binary.BigEndian.Uint64(first) < binary.BigEndian.Uint64(next)) {
			return nil // this commit still has records
		}
		if first == nil && next == nil {
			return ab.Delete(k) // nothing pending at all
		}
		if err := ab.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteOutbox deletes the outbox records seqs of stream i (acked, or
// found damaged) and takes them off the counters; a seq not there is
// skipped.
func deleteOutbox(ob *bolt.Bucket, i int, seqs []uint64, c *counters) error {
	for _, seq := range seqs {
		k := u64key(seq)
		v := ob.Get(k)
		if v == nil {
			continue
		}
		c.bytes -= int64(keyLen + len(v))
		c.outbox[i]--
		if len(v) >= outboxHdr {
			c.outrec[i] -= outboxItems(v)
		}
		if err := ob.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
