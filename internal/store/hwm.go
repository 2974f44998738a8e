package store

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hazmon/hazmon/internal/statefile"
)

// hwmSuffix names the high-water mark file beside the buffer file.
const hwmSuffix = ".hwm"

// hwmState is the high-water mark: the epoch and, per stream, the last
// seq and record number handed out. It is kept outside the buffer file
// (a small JSON record, fsync'd and replaced atomically), written before
// a commit that forms messages (so before any of their seqs can reach
// the broker), so that a fresh file after a reset continues after it:
// seq never goes backwards, rec is never reused.
type hwmState struct {
	Epoch   uint64               `json:"epoch"`
	Streams map[string]hwmStream `json:"streams"`
}

type hwmStream struct {
	Seq uint64 `json:"seq"`
	Rec uint64 `json:"rec"`
}

type hwmFile struct {
	path  string
	saved hwmState // last written (writer and Open only)
}

func (h *hwmFile) load() hwmState {
	var st hwmState
	if err := statefile.Read(h.path, &st); err != nil {
		st = hwmState{}
	}
	if st.Streams == nil {
		st.Streams = map[string]hwmStream{}
	}
	h.saved = st
	return st
}

// save writes st if it differs from what was last written.
func (h *hwmFile) save(st hwmState) error {
	if st.Epoch == h.saved.Epoch && sameStreams(st.Streams, h.saved.Streams) {
		return nil
	}
	if err := statefile.Write(h.path, st); err != nil {
		return err
	}
	h.saved = st
	return nil
}

func sameStreams(a, b map[string]hwmStream) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// hwmLocked is the current high-water mark (Store.mu held).
func (s *Store) hwmLocked() hwmState {
	st := hwmState{Epoch: s.epoch, Streams: map[string]hwmStream{}}
	for _, name := range Streams {
		l := s.lanes[name]
		st.Streams[string(name)] = hwmStream{Seq: l.nextSeq - 1, Rec: l.nextRec - 1}
	}
	return st
}

// saveHWM writes the current high-water mark; a failure is kept for
// Health and logged once per change of error.
func (s *Store) saveHWM() {
	s.mu.Lock()
	st := s.hwmLocked()
	s.mu.Unlock()
	err := s.hwm.save(st)
	s.mu.Lock()
	prev := s.hwmErr
	s.hwmErr = err
	s.mu.Unlock()
	if err != nil && (prev == nil || prev.Error() != err.Error()) {
		s.log.Error("buffer: high-water mark not saved: after a reset of the buffer file seq could repeat", "path", s.hwm.path, "err", err)
	}
}

// faultReason names an I/O error for the buffer_fault event.
func faultReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "disk_full"
	case errors.Is(err, syscall.EROFS):
		return "read_only"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, os.ErrPermission):
		return "permission"
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOENT):
		return "not_a_file"
	}
	return "io_error"
}

func baseName(p string) string { return filepath.Base(p) }
