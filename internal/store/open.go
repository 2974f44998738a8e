package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The file layout. Keys of the per-stream buckets are 8-byte big-endian
// numbers: items, age and dead by record number, outbox by seq.
//
//	meta                bytes, epoch, mono, evicted/<s>, n/items/<s>, n/outbox/<s>, n/outrec/<s>
//	items/<stream>      rec → 8-byte sample ts (unix ms) + record
//	outbox/<stream>     seq → 8-byte oldest ts + 4-byte record count + payload
//	                    (count's top bit set: 8-byte first rec + CRC-32 of those 20 bytes + zlib payload; outboxval.go)
//	age/<stream>        first rec of a commit → 8-byte run time (ms) of that commit
//	dead/<stream>       rec → 8-byte ts + 2-byte reason length + reason + record
var (
	bucketMeta = []byte("meta")
	keyBytes   = []byte("bytes")
	keyEpoch   = []byte("epoch")
	keyMono    = []byte("mono")
)

func itemsBucket(s Stream) []byte  { return []byte("items/" + string(s)) }
func outboxBucket(s Stream) []byte { return []byte("outbox/" + string(s)) }
func ageBucket(s Stream) []byte    { return []byte("age/" + string(s)) }
func deadBucket(s Stream) []byte   { return []byte("dead/" + string(s)) }

const (
	itemHdr   = 8
	outboxHdr = 12
	keyLen    = 8
)

// counters are the per-stream counts kept in meta, so that the records a
// damaged file held are known even when its buckets cannot be read.
type counters struct {
	bytes                  int64
	items, outbox, outrec  [len(Streams)]int64
	evicted                [len(Streams)]int64
	loaded, missingPerStrm bool
}

func ckey(kind string, s Stream) []byte { return []byte(kind + "/" + string(s)) }

func loadCounters(meta *bolt.Bucket) counters {
	c := counters{bytes: int64(getU64(meta, keyBytes)), loaded: true}
	for i, s := range Streams {
		c.items[i] = int64(getU64(meta, ckey("n/items", s)))
		c.outbox[i] = int64(getU64(meta, ckey("n/outbox", s)))
		c.outrec[i] = int64(getU64(meta, ckey("n/outrec", s)))
		c.evicted[i] = int64(getU64(meta, ckey("evicted", s)))
		if meta.Get(ckey("n/items", s)) == nil {
			c.missingPerStrm = true
		}
	}
	return c
}

func (c *counters) store(meta *bolt.Bucket) {
	putU64(meta, keyBytes, uint64(max(0, c.bytes)))
	for i, s := range Streams {
		putU64(meta, ckey("n/items", s), uint64(max(0, c.items[i])))
		putU64(meta, ckey("n/outbox", s), uint64(max(0, c.outbox[i])))
		putU64(meta, ckey("n/outrec", s), uint64(max(0, c.outrec[i])))
		putU64(meta, ckey("evicted", s), uint64(max(0, c.evicted[i])))
	}
}

// openChecked opens (or creates) the file and checks it whole before
// first use (checkFile), all under guard. The error is classified: lock
// timeout (errInUse), an I/O error (isIOError), or damage (errDamaged).
func openChecked(path string, opts Options) (*bolt.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create folder: %w", err)
	}
	if err := precheck(path); err != nil {
		return nil, err
	}
	var db *bolt.DB
	opened := false
	err := guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync, FreelistType: bolt.FreelistMapType})
		opened = true
		if err != nil {
			return err
		}
		if opts.Fault != nil {
			if err := opts.Fault("open"); err != nil {
				return err
			}
		}
		return checkFile(db)
	})
	if err == nil {
		return db, nil
	}
	if db != nil {
		_ = guard(db.Close)
	} else if !opened {
		closeLeaked(path) // bbolt's Open panicked holding the lock
	}
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, errInUse
	case isIOError(err), isDamage(err):
		return nil, err
	}
	return nil, fmt.Errorf("%w: %v", errDamaged, err)
}

// checkFile walks the whole file, in this goroutine (bbolt's tx.Check
// runs in a goroutine of its own, where a fault could not be recovered):
// every page below the high water mark must be free, a branch, a leaf or
// the freelist; every record of every bucket is read and the hazmon
// buckets' keys and values must have their headers; the pages the
// buckets use must not be listed free, and the freelist must list only
// pages below the high water mark. A page bbolt cannot read panics,
// which guard turns into damage.
func checkFile(db *bolt.DB) error {
	freeListed := db.Stats().FreePageN
	return db.View(func(tx *bolt.Tx) error {
		pageSize := db.Info().PageSize
		hwm := int(tx.Size()) / pageSize
		used, free := 0, 0
		for id := 2; id < hwm; {
			info, err := tx.Page(id)
			if err != nil {
				return fmt.Errorf("%w: page %d: %v", errDamaged, id, err)
			}
			if info == nil {
				break
			}
			switch info.Type {
			case "free":
				free++
				id++
				continue
			case "leaf", "branch", "freelist":
				used += 1 + info.OverflowCount
			default:
				return fmt.Errorf("%w: page %d has type %q", errDamaged, id, info.Type)
			}
			id += 1 + info.OverflowCount
		}
		if free != freeListed {
			return fmt.Errorf("%w: the freelist lists %d pages, %d below the high water mark are free", errDamaged, freeListed, free)
		}
		reachable := 0
		err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			st := b.Stats()
			reachable += st.BranchPageN + st.BranchOverflowN + st.LeafPageN + st.LeafOverflowN
			return walkBucket(string(name), b)
		})
		if err != nil {
			return err
		}
		if reachable > used {
			return fmt.Errorf("%w: buckets use %d pages, only %d pages are in use", errDamaged, reachable, used)
		}
		return nil
	})
}

// walkBucket reads every record of b and checks the layout of the hazmon
// buckets.
func walkBucket(name string, b *bolt.Bucket) error {
	hdr := -1
	for _, s := range Streams {
		switch name {
		case string(itemsBucket(s)), string(ageBucket(s)):
			hdr = itemHdr
		case string(outboxBucket(s)):
			hdr = outboxHdr
		case string(deadBucket(s)):
			hdr = itemHdr + 2
		}
	}
	return b.ForEach(func(k, v []byte) error {
		if hdr < 0 {
			return nil
		}
		if len(k) != keyLen || v == nil || len(v) < hdr {
			return fmt.Errorf("%w: bucket %s: key %x: malformed record (%d bytes)", errDamaged, name, k, len(v))
		}
		return nil
	})
}

// attach makes db the store's file: it creates the buckets, reads the
// epoch, the run time and the sequences, and sets the lanes' counters
// from them and st (the larger wins). Records held in memory whose
// numbers the file also uses (it could not be read at Open, so they were
// numbered from the high-water mark) make the file's records move to new
// numbers: those were never published.
func (s *Store) attach(db *bolt.DB, st hwmState) error {
	file := map[Stream][2]uint64{}
	var epoch, mono uint64
	err := guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			for _, name := range Streams {
				for _, b := range [][]byte{itemsBucket(name), outboxBucket(name), ageBucket(name), deadBucket(name)} {
					if _, err := tx.CreateBucketIfNotExists(b); err != nil {
						return err
					}
				}
			}
			c := loadCounters(meta)
			if meta.Get(keyBytes) == nil || c.missingPerStrm {
				c = recount(tx, c)
			}
			mono = getU64(meta, keyMono)
			epoch = max(getU64(meta, keyEpoch), st.Epoch, 1)
			putU64(meta, keyEpoch, epoch)
			s.mu.Lock()
			if !s.attached { // numbered from the high-water mark alone: may collide
				err = s.rekeyLocked(tx, &c)
			}
			for _, name := range Streams {
				file[name] = [2]uint64{tx.Bucket(itemsBucket(name)).Sequence(), tx.Bucket(outboxBucket(name)).Sequence()}
			}
			s.mu.Unlock()
			if err != nil {
				return err
			}
			c.store(meta)
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.dbMu.Lock()
	s.db = db
	s.dbMu.Unlock()
	s.mu.Lock()
	s.attached = true
	s.ageBase = max(s.ageBase, int64(mono)-s.opts.Mono().Milliseconds())
	s.epoch = max(s.epoch, epoch)
	st.Epoch = s.epoch
	s.initLanes(st, file)
	s.mu.Unlock()
	return nil
}

// recount computes the counters of a file written before they existed.
func recount(tx *bolt.Tx, c counters) counters {
	c.bytes = 0
	for i, name := range Streams {
		c.items[i], c.outbox[i], c.outrec[i] = 0, 0, 0
		_ = tx.Bucket(itemsBucket(name)).ForEach(func(k, v []byte) error {
			c.items[i]++
			c.bytes += int64(len(k) + len(v))
			return nil
		})
		_ = tx.Bucket(outboxBucket(name)).ForEach(func(k, v []byte) error {
			c.outbox[i]++
			if len(v) >= outboxHdr {
				c.outrec[i] += outboxItems(v)
			}
			c.bytes += int64(len(k) + len(v))
			return nil
		})
	}
	return c
}

// rekeyLocked moves the file's pending records whose numbers collide with
// records held in memory to fresh numbers (Store.mu held).
func (s *Store) rekeyLocked(tx *bolt.Tx, _ *counters) error {
	for _, name := range Streams {
		l := s.lanes[name]
		if l == nil {
			continue
		}
		first := l.firstMemRec()
		ib := tx.Bucket(itemsBucket(name))
		if first == 0 || ib.Sequence() < first {
			continue
		}
		type kv struct{ k, v []byte }
		var moved []kv
		c := ib.Cursor()
		for k, v := c.Seek(u64key(first)); k != nil; k, v = c.Next() {
			moved = append(moved, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		for _, m := range moved {
			if err := ib.Delete(m.k); err != nil {
				return err
			}
		}
		for _, m := range moved {
			if err := ib.Put(u64key(l.nextRec), m.v); err != nil {
				return err
			}
			l.nextRec++
		}
		if err := ib.SetSequence(l.nextRec - 1); err != nil {
			return err
		}
		s.log.Warn("buffer: records of the file renumbered after those numbered while it could not be read", "stream", name, "records", len(moved))
	}
	return nil
}

// enterFault closes the file (if open) and runs on memory until the
// writer can open and write it again.
func (s *Store) enterFault(err error) {
	s.dbMu.Lock()
	db := s.db
	s.db = nil
	s.dbMu.Unlock()
	s.guardClose(db)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fault == nil {
		s.faultAt = time.Now()
	}
	s.fault = err
}

// replaceDamaged moves the damaged file aside, creates a fresh one and
// salvages the readable records into it; st is raised to what the
// damaged file held, and its epoch incremented.
func (s *Store) replaceDamaged(cause error, st *hwmState) (*bolt.DB, error) {
	moved := fmt.Sprintf("%s.corrupt-%d", s.path, s.opts.Now().Unix())
	if err := os.Rename(s.path, moved); err != nil {
		return nil, fmt.Errorf("damaged (%v) and cannot be moved aside: %w", cause, err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		s.log.Warn("buffer: fsync of the folder after moving the damaged file aside", "err", err)
	}
	db, err := openChecked(s.path, s.opts)
	if err != nil {
		return nil, fmt.Errorf("create a fresh file after moving the damaged one aside: %w", err)
	}
	res := s.salvage(moved, db, st)
	r := &Reset{MovedTo: moved, Cause: cause, Epoch: st.Epoch, Salvaged: res.salvaged, Lost: res.lost}
	s.mu.Lock()
	s.reset = r
	s.mu.Unlock()
	if err := s.hwm.save(*st); err != nil {
		s.log.Error("buffer: high-water mark not saved after a reset", "err", err)
	}
	s.log.Error("buffer file damaged: moved aside, a fresh one started, readable records salvaged",
		"path", s.path, "moved_to", moved, "cause", cause, "epoch", r.Epoch, "salvaged", r.Salvaged, "lost", r.Lost)
	return db, nil
}

func u64key(v uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, v)
	return k
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, k []byte, v uint64) {
	// Put only fails on a read-only tx, a nil/oversized key or value: none
	// can happen here, and the transaction would report it anyway.
	_ = b.Put(k, u64key(v))
}
