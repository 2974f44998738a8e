package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// OpenReadOnly opens an existing buffer file for inspection only (the
// technician's `hazmon buffer stats` and `buffer export` while the agent
// is stopped). It takes a shared lock: it fails within opts.LockTimeout
// with ErrInUse while the agent holds the file, and an agent starting
// meanwhile waits for Close. Nothing is created, evicted or written:
// Stats, Outbox and Pending work; AppendAsync fails with ErrBusy and Form
// and Ack fail with bbolt's read-only error. A missing file gives an error
// wrapping os.ErrNotExist.
func OpenReadOnly(path string, opts Options) (*Store, error) {
	opts.defaults()
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("buffer %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: true})
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("buffer %s: %w", path, ErrInUse)
	default:
		return nil, fmt.Errorf("buffer %s: open read-only: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("not a hazmon buffer (no meta bucket)")
		}
		for _, st := range Streams {
			if tx.Bucket(itemsBucket(st)) == nil || tx.Bucket(outboxBucket(st)) == nil {
				return fmt.Errorf("not a hazmon buffer (no %s buckets)", st)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("buffer %s: %w", path, err)
	}
	// An unbuffered request channel with no writer: appends fail with ErrBusy.
	return &Store{db: db, path: path, opts: opts, log: opts.Logger,
		reqs: make(chan appendReq), notify: make(chan struct{}, 1)}, nil
}

// Pending returns up to max pending items (not yet formed into a message)
// of stream with an ID greater than after, in ID order (max <= 0: all).
// With Outbox it gives everything the buffer holds, for export.
func (s *Store) Pending(stream Stream, after uint64, max int) ([]Item, error) {
	var out []Item
	err := s.view(func(tx *bolt.Tx) error {
		ib := tx.Bucket(itemsBucket(stream))
		if ib == nil {
			return fmt.Errorf("unknown stream %q", stream)
		}
		c := ib.Cursor()
		for k, v := c.Seek(u64key(after + 1)); k != nil && (max <= 0 || len(out) < max); k, v = c.Next() {
			out = append(out, Item{
				ID:   binary.BigEndian.Uint64(k),
				TS:   time.UnixMilli(int64(binary.BigEndian.Uint64(v))),
				Data: append([]byte(nil), v[itemHdr:]...),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("buffer %s: read %s pending: %w", s.path, stream, err)
	}
	return out, nil
}
