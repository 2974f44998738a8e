package store

import (
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// OpenReadOnly opens an existing buffer file for inspection only (the
// technician's `hazmon buffer stats` and `buffer export` while the agent
// is stopped). It takes a shared lock: it fails within opts.LockTimeout
// with ErrInUse while the agent holds the file, and an agent starting
// meanwhile waits for Close. Nothing is created, evicted or written:
// Stats, Outbox, Pending and Dead work; AppendAsync fails with ErrBusy and
// Form fails. A missing file gives an error wrapping os.ErrNotExist; a
// damaged one an error (every read is guarded).
func OpenReadOnly(path string, opts Options) (*Store, error) {
	opts.defaults()
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("buffer %s: %w", path, err)
	}
	var db *bolt.DB
	err := guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: true})
		return err
	})
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("buffer %s: %w", path, ErrInUse)
	default:
		return nil, fmt.Errorf("buffer %s: open read-only: %w", path, err)
	}
	s := newStore(path, opts)
	s.readOnly = true
	file := map[Stream][2]uint64{}
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta == nil {
				return errors.New("not a hazmon buffer (no meta bucket)")
			}
			for _, st := range Streams {
				ib, ob := tx.Bucket(itemsBucket(st)), tx.Bucket(outboxBucket(st))
				if ib == nil || ob == nil {
					return fmt.Errorf("not a hazmon buffer (no %s buckets)", st)
				}
				file[st] = [2]uint64{ib.Sequence(), ob.Sequence()}
			}
			s.epoch = max(getU64(meta, keyEpoch), 1)
			return nil
		})
	})
	if err != nil {
		_ = guard(db.Close)
		return nil, fmt.Errorf("buffer %s: %w", path, err)
	}
	s.db = db
	s.initLanes(hwmState{}, file)
	return s, nil
}
