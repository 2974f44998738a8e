package mtt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// tmpPrefix starts the name of a file being written into the spool; such
// a file found on opening is the remains of a crash and is removed.
const tmpPrefix = ".tmp-"

// Spool keeps the files until their upload is confirmed. A file is written
// atomically (a temporary file, fsync, rename, fsync of the directory), so
// after a crash the spool holds whole files only; the files found when it
// is opened are pushed like new ones. The spool is bounded by bytes and
// files: beyond a bound the oldest real-time files (CDSS) are dropped
// first, then the oldest statistics (TJSJ); point definitions (CDDY) and
// abnormal records (YCBJ) are never dropped, even beyond a bound. A file
// being uploaded is not dropped. Safe for concurrent use.
type Spool struct {
	dir      string
	maxBytes int64
	maxFiles int
	notify   chan struct{}

	putMu sync.Mutex // serialises Put, so its write can run without mu

	mu      sync.Mutex
	files   []spooled // in push order
	bytes   int64
	dropped map[FileType]uint64
	latest  map[FileType]string // newest name time seen per kind (NameTimeLayout)
}

type spooled struct {
	name  string
	typ   FileType
	stamp string // name time, NameTimeLayout
	size  int64
	busy  bool // handed out by Next, not yet Done or Release
}

func (a spooled) before(b spooled) bool {
	if a.stamp != b.stamp {
		return a.stamp < b.stamp
	}
	if a.typ != b.typ {
		return a.typ.rank() < b.typ.rank()
	}
	return a.name < b.name
}

// SpoolStats is the spool's state for status and metrics.
type SpoolStats struct {
	Files int   // files waiting for upload
	Bytes int64 // their size in bytes
	// Dropped counts the files dropped to keep the spool within its
	// bounds, per kind (only CDSS and TJSJ are ever dropped).
	Dropped map[FileType]uint64
}

// OpenSpool opens (creating it, mode 0750) the spool directory dir with
// bounds maxBytes and maxFiles (≤ 0: unbounded). Files of another name
// than ParseName accepts are left alone and not pushed; temporary files
// of an interrupted write are removed. Errors name the directory.
func OpenSpool(dir string, maxBytes int64, maxFiles int) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, maxFiles: maxFiles, notify: make(chan struct{}, 1),
		dropped: map[FileType]uint64{}, latest: map[FileType]string{}}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("spool %s: remove interrupted write: %w", dir, err)
			}
			continue
		}
		_, typ, _, err := ParseName(name, time.UTC)
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("spool %s: %w", dir, err)
		}
		s.add(spooled{name: name, typ: typ, stamp: stampOf(name), size: info.Size()})
	}
	if len(s.files) > 0 {
		s.signal()
	}
	return s, nil
}

// stampOf is the yyyyMMddHHmmss of a name ParseName accepted.
func stampOf(name string) string { return name[18:32] }

// add inserts f in push order. Called with mu held (or before sharing).
func (s *Spool) add(f spooled) {
	i, _ := slices.BinarySearchFunc(s.files, f, func(a, b spooled) int {
		switch {
		case a.before(b):
			return -1
		case b.before(a):
			return 1
		}
		return 0
	})
	s.files = slices.Insert(s.files, i, f)
	s.bytes += f.size
	if f.stamp > s.latest[f.typ] {
		s.latest[f.typ] = f.stamp
	}
}

// Latest is the newest name time (yyyyMMddHHmmss) of a file of kind t
// that the spool holds or held since it was opened, "" if none: names
// must increase so a file never replaces another.
func (s *Spool) Latest(t FileType) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest[t]
}

// Put writes f into the spool atomically and then keeps the spool within
// its bounds. A real-time or statistics file that cannot fit without
// dropping a definition or abnormal record is itself dropped (counted,
// nil error). Errors (disk full, permissions) name the file, which is then
// not in the spool.
func (s *Spool) Put(f File) error {
	if _, typ, _, err := ParseName(f.Name, time.UTC); err != nil || typ != f.Type {
		return fmt.Errorf("spool %s: %q is not a %s file name", s.dir, f.Name, f.Type)
	}
	s.putMu.Lock()
	defer s.putMu.Unlock()
	n := spooled{name: f.Name, typ: f.Type, stamp: stampOf(f.Name), size: int64(len(f.Data))}
	s.mu.Lock()
	if s.index(f.Name) >= 0 {
		s.mu.Unlock()
		return fmt.Errorf("spool %s: %s is already spooled", s.dir, f.Name)
	}
	room := s.makeRoom(n)
	if !room {
		s.dropped[f.Type]++
	}
	s.mu.Unlock()
	if !room {
		return nil
	}
	if err := writeAtomic(s.dir, f.Name, f.Data); err != nil {
		return fmt.Errorf("spool %s: %w", s.dir, err)
	}
	s.mu.Lock()
	s.add(n)
	s.mu.Unlock()
	s.signal()
	return nil
}

// droppable kinds, in the order they are dropped.
var droppable = []FileType{TypeCDSS, TypeTJSJ}

// makeRoom drops the oldest droppable files until n fits within the
// bounds, and reports whether n is to be written: always for a kind that
// is never dropped, else only if it fits. Called with mu held.
func (s *Spool) makeRoom(n spooled) bool {
	fits := func() bool {
		return (s.maxBytes <= 0 || s.bytes+n.size <= s.maxBytes) && (s.maxFiles <= 0 || len(s.files)+1 <= s.maxFiles)
	}
	for _, t := range droppable {
		for !fits() {
			i := slices.IndexFunc(s.files, func(x spooled) bool { return x.typ == t && !x.busy && x.before(n) })
			if i < 0 {
				break
			}
			s.remove(i)
			s.dropped[t]++
		}
	}
	return fits() || !slices.Contains(droppable, n.typ)
}

// remove deletes the i-th file from disk and the list. Called with mu held.
func (s *Spool) remove(i int) {
	f := s.files[i]
	_ = os.Remove(filepath.Join(s.dir, f.name)) // gone already is fine; a failure leaves a file OpenSpool finds again
	s.files = slices.Delete(s.files, i, i+1)
	s.bytes -= f.size
}

func (s *Spool) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Notify delivers a signal after a Put (or on opening a spool that holds
// files): there may be a file to push.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Next hands out the oldest file not yet handed out, with its path; ok is
// false when there is none. The file stays in the spool until Done, and
// is not dropped meanwhile; Release hands it back.
func (s *Spool) Next() (name, path string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.files {
		if !s.files[i].busy {
			s.files[i].busy = true
			return s.files[i].name, filepath.Join(s.dir, s.files[i].name), true
		}
	}
	return "", "", false
}

// Release hands a file from Next back, to be handed out again (its upload
// failed).
func (s *Spool) Release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.index(name); i >= 0 {
		s.files[i].busy = false
	}
}

// Done removes a file whose upload is confirmed. Errors name the file
// (the file is then still listed and will be pushed again).
func (s *Spool) Done(name string) error {
	s.mu.Lock()
	i := s.index(name)
	if i < 0 {
		s.mu.Unlock()
		return nil
	}
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.files[i].busy = false
		s.mu.Unlock()
		return fmt.Errorf("spool %s: %w", s.dir, err)
	}
	s.remove(i)
	s.mu.Unlock()
	return syncDir(s.dir)
}

func (s *Spool) index(name string) int {
	return slices.IndexFunc(s.files, func(x spooled) bool { return x.name == name })
}

// Stats returns the spool's state.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := make(map[FileType]uint64, len(s.dropped))
	for k, v := range s.dropped {
		d[k] = v
	}
	return SpoolStats{Files: len(s.files), Bytes: s.bytes, Dropped: d}
}

// Names lists the spooled files in push order.
func (s *Spool) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.name
	}
	return out
}

// testHookBeforeRename, set only by tests, runs when a spooled file is
// written and fsynced under its temporary name and not yet renamed: the
// point a crash would stop at.
var testHookBeforeRename func(tmp, final string)

// writeAtomic writes data to dir/name through a temporary file: written,
// fsynced, closed, renamed into place, then the directory fsynced, so a
// crash leaves either no file or the whole file.
func writeAtomic(dir, name string, data []byte) (err error) {
	tmp := filepath.Join(dir, tmpPrefix+name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if testHookBeforeRename != nil {
		testHookBeforeRename(tmp, filepath.Join(dir, name))
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
