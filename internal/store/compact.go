package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Compact copies the live data into a fresh file and swaps it in, whatever
// the thresholds; it returns the file size before and after. Appends wait
// in the queue meanwhile (the copy holds only the live records).
func (s *Store) Compact() (before, after int64, err error) {
	return s.maybeCompact(true)
}

// maybeCompact compacts when forced, or when the file is at least
// CompactMinSize, more than CompactRatio times the live data, and has
// grown since the last compaction (field case S2: the file shrinks back
// after a long outage's backlog has drained).
//
// The swap is crash-safe: the copy is written and fsynced beside the file
// as "<path>.compact" and renamed over it (atomic); a crash before the
// rename leaves the old file in place (the stale copy is removed at the
// next compaction), after it the new one. The new file is locked from its
// creation, so no second opener can slip in during the swap.
func (s *Store) maybeCompact(force bool) (before, after int64, err error) {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return 0, 0, errNoDB
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0, 0, fmt.Errorf("buffer %s: compact: %w", s.path, err)
	}
	before = fi.Size()
	if !force {
		var live int64
		db := s.db
		if err := guard(func() error {
			return db.View(func(tx *bolt.Tx) error {
				live = int64(getU64(tx.Bucket(bucketMeta), keyBytes))
				return nil
			})
		}); err != nil {
			return before, before, fmt.Errorf("buffer %s: compact: %w", s.path, err)
		}
		if s.opts.CompactMinSize < 0 || before < s.opts.CompactMinSize || live*CompactRatio >= before ||
			(s.lastCompacted > 0 && before < 2*s.lastCompacted) {
			return before, before, nil
		}
	}
	t0 := time.Now()
	tmp := s.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: s.opts.LockTimeout, NoSync: s.opts.NoSync, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return before, before, fmt.Errorf("buffer %s: compact: create copy: %w", s.path, err)
	}
	fail := func(err error) (int64, int64, error) {
		dst.Close()
		os.Remove(tmp)
		return before, before, fmt.Errorf("buffer %s: compact: %w", s.path, err)
	}
	if err := guard(func() error { return bolt.Compact(dst, s.db, 8<<20) }); err != nil {
		return fail(err)
	}
	if err := dst.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fail(err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		s.log.Warn("buffer compaction: fsync of the folder failed", "path", s.path, "err", err)
	}
	// The old file is unlinked; closing it cannot lose anything.
	if err := s.db.Close(); err != nil {
		s.log.Warn("buffer compaction: closing the old file", "path", s.path, "err", err)
	}
	s.db = dst
	if fi, err := os.Stat(s.path); err == nil {
		after = fi.Size()
	}
	s.lastCompacted = after
	s.log.Info("buffer compacted", "path", s.path, "before_bytes", before, "after_bytes", after, "took", time.Since(t0).Round(time.Millisecond))
	return before, after, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// statfsFree returns the bytes available to an unprivileged user on the
// filesystem holding dir.
func statfsFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// freeCache remembers the last free-space figure for a second, so a
// commit costs at most one statfs per second, and the cap frozen while
// the disk is below the reserve.
type freeCache struct {
	mu     sync.Mutex
	at     time.Time
	low    bool  // free space is below MinFree
	frozen int64 // accounted bytes when it went low: the cap meanwhile
}

// limit returns the byte cap to enforce now, given the accounted bytes:
// MaxBytes, or, while the disk is below MinFree free space, the bytes
// buffered when it went low: the buffer stops growing (new records evict
// the oldest telemetry into freed pages) instead of hitting ENOSPC.
// Evicting does not give space back to the disk (only a compaction does),
// so the cap is frozen rather than lowered further. A disk that cannot be
// measured leaves MaxBytes in force.
func (s *Store) limit(bytes int64) int64 {
	if s.opts.MinFree < 0 {
		return s.opts.MaxBytes
	}
	f := &s.free
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.at.IsZero() || time.Since(f.at) > time.Second {
		free, err := s.opts.FreeSpace(filepath.Dir(s.path))
		f.at = time.Now()
		switch {
		case err != nil:
			s.log.Warn("buffer: cannot measure free disk space", "path", s.path, "err", err)
		case free < s.opts.MinFree && !f.low:
			// Never freeze below FrozenFloor: a fresh (empty) buffer on a
			// nearly full disk must still hold alarms, not evict each one.
			f.low, f.frozen = true, max(bytes, s.opts.FrozenFloor)
			s.log.Error("buffer: disk almost full; the buffer stops growing and evicts the oldest telemetry",
				"path", s.path, "free_bytes", free, "reserve_bytes", s.opts.MinFree, "buffered_bytes", bytes)
		case free >= s.opts.MinFree && f.low:
			f.low = false
			s.log.Info("buffer: disk space back above the reserve", "path", s.path, "free_bytes", free)
		}
	}
	if f.low {
		return min(s.opts.MaxBytes, f.frozen)
	}
	return s.opts.MaxBytes
}
