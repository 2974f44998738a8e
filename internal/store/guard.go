package store

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// errDamaged wraps every error that means the file's structure is broken:
// a bbolt panic (a page it cannot make sense of), a fault in the mapping,
// a failed consistency check.
var errDamaged = errors.New("buffer file damaged")

// errInUse is openChecked's lock timeout (the Store reports ErrInUse).
var errInUse = errors.New("file locked by another process")

// errNoDB is returned by a file operation while the file is not open.
var errNoDB = errors.New("buffer file not open")

// guard runs fn with panic-on-fault set on this goroutine and turns a
// panic into an error wrapping errDamaged. bbolt reads the file through a
// memory mapping: a damaged page can make it touch memory outside it, a
// fault that recover catches only with SetPanicOnFault (issue 10 item 1).
// Every goroutine that touches the mapping goes through guard.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt panic: %v", errDamaged, r)
		}
	}()
	return fn()
}

// isDamage reports whether err means the file is damaged (not an I/O error).
func isDamage(err error) bool {
	return errors.Is(err, errDamaged) || errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrInvalidMapping)
}

// isIOError reports whether err is the disk's or the filesystem's refusal
// (full, read-only, no permission, I/O error, not a file) rather than
// damage: the file is kept and retried.
func isIOError(err error) bool {
	if err == nil || isDamage(err) {
		return false
	}
	for _, e := range []error{syscall.EIO, syscall.EROFS, syscall.ENOSPC, syscall.EACCES, syscall.EPERM,
		syscall.EDQUOT, syscall.ENOTDIR, syscall.EISDIR, syscall.ENOENT, syscall.ENXIO, syscall.ENODEV, syscall.EBUSY} {
		if errors.Is(err, e) {
			return true
		}
	}
	return errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist)
}

// view runs fn in a guarded read transaction on the current file. Damage
// found there is recorded for the writer to reset the file.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return errNoDB
	}
	db := s.db
	err := guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if s.opts.Fault != nil {
				if err := s.opts.Fault("view"); err != nil {
					return err
				}
			}
			return fn(tx)
		})
	})
	if isDamage(err) {
		s.noteDamage(db, err)
	}
	return err
}

// damageNote is damage met on one open file.
type damageNote struct {
	db  *bolt.DB
	err error
}

// noteDamage records that the file db is damaged and wakes the writer,
// which moves it aside and salvages it (unless db was replaced already).
func (s *Store) noteDamage(db *bolt.DB, err error) {
	if s.damage.CompareAndSwap(nil, &damageNote{db: db, err: err}) {
		s.log.Error("buffer file damaged: it will be moved aside and salvaged", "path", s.path, "err", err)
	}
	s.wake()
}

// currentDB is the open file (nil: none).
func (s *Store) currentDB() *bolt.DB {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db
}

// guardClose closes db, whatever state it is in.
func (s *Store) guardClose(db *bolt.DB) {
	if db == nil {
		return
	}
	if err := guard(db.Close); err != nil {
		s.log.Warn("buffer: closing the file", "path", s.path, "err", err)
	}
}
