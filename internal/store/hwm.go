package store

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hazmon/hazmon/internal/statefile"
)

// hwmSuffix names the high-water mark file beside the buffer file.
const hwmSuffix = ".hwm"

// Reserves of the high-water mark saved while the store runs: the mark
// names numbers this far above the last seq and rec handed out, and is
// written again only once a counter passes it (or the epoch changes), so
// the disk sees the mark's two fsyncs about once per hwmSeqReserve
// messages or hwmRecReserve records of a stream, not at every commit.
// Close writes the exact mark. After a crash or power cut the next start
// continues above the reserve: up to hwmSeqReserve seqs and hwmRecReserve
// recs of a stream are then never used (the README's contract says so).
const (
	hwmSeqReserve = 1 << 10
	hwmRecReserve = 1 << 16
)

// hwmState is the high-water mark: the epoch and, per stream, a seq and
// a record number no number handed out has passed. It is kept outside
// the buffer file (a small JSON record, fsync'd and replaced atomically),
// written whenever a counter has passed it before a commit that forms
// messages, and by the marker before a message is published from memory
// (marker.go), so before any of their numbers can reach the broker; so that
// the next start and a fresh file after a reset continue above it: seq
// never goes backwards, rec is never reused.
type hwmState struct {
	Epoch   uint64               `json:"epoch"`
	Streams map[string]hwmStream `json:"streams"`
	// Reserve: saved while running, Seq and Rec lie up to the reserves
	// above the numbers handed out; false: exact (saved at Close, or by
	// an earlier version).
	Reserve bool `json:"reserve,omitempty"`
}

type hwmStream struct {
	Seq uint64 `json:"seq"`
	Rec uint64 `json:"rec"`
}

// hwmFile is the mark's file. Saves come from the writer, the marker
// (marker.go), Open and Close; mu serialises them. cover is the last mark
// written, for readers that must not wait behind a save (Form, Outbox).
type hwmFile struct {
	path  string
	mu    sync.Mutex // held across a save
	saved hwmState   // last written (mu)
	cover atomic.Pointer[hwmState]
}

func (h *hwmFile) load() hwmState {
	var st hwmState
	if err := statefile.Read(h.path, &st); err != nil {
		st = hwmState{}
	}
	if st.Streams == nil {
		st.Streams = map[string]hwmStream{}
	}
	h.mu.Lock()
	h.saved = st
	h.mu.Unlock()
	h.cover.Store(&st)
	return st
}

// save writes st if it differs from what was last written.
func (h *hwmFile) save(st hwmState) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.saveLocked(st)
}

// saveLocked writes st (h.mu held). Across epochs the mark never goes
// down: a save computed before a reset raised the epoch keeps the saved
// epoch, and a reset's mark (computed before its salvage, while numbers
// may have been handed out and published under the old one's reserve)
// keeps every number already saved; both take the larger of each.
// Within an epoch st is written as it is (Close's exact mark lies below
// the reserve).
func (h *hwmFile) saveLocked(st hwmState) error {
	if st.Epoch != h.saved.Epoch {
		st = raiseMark(st, h.saved)
	}
	if st.Epoch == h.saved.Epoch && st.Reserve == h.saved.Reserve && sameStreams(st.Streams, h.saved.Streams) {
		return nil
	}
	if err := statefile.Write(h.path, st); err != nil {
		return err
	}
	h.saved = st
	h.cover.Store(&st)
	return nil
}

// raiseMark is st raised to cover saved too: the later epoch, and per
// stream the larger seq and rec (marked Reserve if saved's were larger).
func raiseMark(st, saved hwmState) hwmState {
	out := hwmState{Epoch: max(st.Epoch, saved.Epoch), Reserve: st.Reserve, Streams: map[string]hwmStream{}}
	for k, v := range st.Streams {
		out.Streams[k] = v
	}
	for k, m := range saved.Streams {
		v := out.Streams[k]
		if m.Seq > v.Seq || m.Rec > v.Rec {
			v, out.Reserve = hwmStream{Seq: max(v.Seq, m.Seq), Rec: max(v.Rec, m.Rec)}, true
		}
		out.Streams[k] = v
	}
	return out
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

// hwmLocked is the exact high-water mark (Store.mu held).
func (s *Store) hwmLocked() hwmState {
	st := hwmState{Epoch: s.epoch, Streams: map[string]hwmStream{}}
	for _, name := range Streams {
		l := s.lanes[name]
		st.Streams[string(name)] = hwmStream{Seq: l.nextSeq - 1, Rec: l.nextRec - 1}
	}
	return st
}

// markCoversLocked reports whether the saved mark covers every number
// handed out in this epoch (Store.mu and hwm.mu held). A mark never saved
// has epoch 0.
func (s *Store) markCoversLocked() bool {
	h := &s.hwm
	if s.hwmErr != nil || h.saved.Epoch < s.epoch {
		return false
	}
	for _, name := range Streams {
		l, m := s.lanes[name], h.saved.Streams[string(name)]
		if l.nextSeq-1 > m.Seq || l.nextRec-1 > m.Rec {
			return false
		}
	}
	return true
}

// saveHWM makes the saved mark cover every number handed out: when a
// counter has passed it, it writes the current counters plus the
// reserves. A failure is kept for Health and logged once per change of
// error. It reports whether the save succeeded (or was not needed).
func (s *Store) saveHWM() bool {
	s.hwm.mu.Lock()
	defer s.hwm.mu.Unlock()
	s.mu.Lock()
	if s.markCoversLocked() {
		s.mu.Unlock()
		return true
	}
	st := s.hwmLocked()
	s.mu.Unlock()
	for k, v := range st.Streams {
		// A stream the saved mark still covers keeps its value (one that
		// never handed out a number gets no reserve, so skips none after
		// a crash); one that passed it gets the reserves above its
		// counters.
		if m := s.hwm.saved.Streams[k]; v.Seq > m.Seq || v.Rec > m.Rec {
			v = hwmStream{Seq: v.Seq + hwmSeqReserve, Rec: v.Rec + hwmRecReserve}
		} else {
			v = m
		}
		st.Streams[k] = v
	}
	st.Reserve = true
	err := s.hwm.saveLocked(st)
	s.noteHWM(err)
	return err == nil
}

// saveExactHWM writes the exact mark (Close: nothing more is handed
// out, so the next start goes on with the next numbers).
func (s *Store) saveExactHWM() {
	s.mu.Lock()
	st := s.hwmLocked()
	s.mu.Unlock()
	s.noteHWM(s.hwm.save(st))
}

func (s *Store) noteHWM(err error) {
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
