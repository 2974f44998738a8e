// Package store is hazmon's store-and-forward buffer: for each stream
// (telemetry, alarm, event), a queue of pending records and an outbox of
// formed messages waiting for their PUBACK, kept in a bbolt file and, while
// the file cannot be written, in a bounded queue in memory.
//
// Life of a record:
//
//	AppendAsync (numbered: rec, never blocks) → queued in memory
//	writer round (group commit, one fsync)    → pending item in the file
//	Form  (next seq, records → message)        → outbox, written by the next round
//	Ack   (after PUBACK)                        → removed by a later round
//
// With Options.CommitInterval the writer gathers telemetry and statistics
// for that long after the first record waiting, and a Form of them waits
// for the end of that window, so the records, the messages formed from
// them and the acks that came meanwhile share one transaction (group.go);
// alarms and events are written at once, and nothing is written while
// nothing waits.
//
// Record numbers (rec) are assigned per stream when a record is accepted,
// are contiguous and never reused; seq is assigned per stream when a
// message is formed. Both continue across restarts and resets of the
// file from a high-water mark kept beside it (hwm.go; after a crash they
// go on above its reserve, skipping numbers never used; a message sent
// from memory before it is written waits until the mark covers it,
// marker.go), and every
// message carries the buffer epoch (incremented on every reset). Nothing
// leaves the buffer before Ack names it, except by eviction (MaxBytes,
// MaxAge, the memory bound) or dead-lettering (a record that cannot be
// formed), each reported as a data_loss event naming the stream and the
// rec range.
//
// The file is checked page by page before first use, and every bbolt
// operation runs under recover with panic-on-fault set (guard.go): a
// damaged file is moved aside, a fresh one started and the readable records
// salvaged into it (salvage.go). An I/O error (disk full, read-only, EIO)
// is not damage: the file is kept, records wait in memory, and the file is
// retried with back-off (writer.go).
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Stream names one ordered queue; each has its own message seq and record
// numbers.
type Stream string

// The streams, in publishing priority order (see Streams).
const (
	Alarm      Stream = "alarm"
	Event      Stream = "event"
	Statistics Stream = "stats" // statistics windows (contract.Stats)
	Telemetry  Stream = "telemetry"
)

// Streams lists every stream in publishing priority: alarms first, then
// events, then telemetry. Eviction walks it backwards (telemetry first).
var Streams = [...]Stream{Alarm, Event, Statistics, Telemetry}

// Reset describes a damaged buffer file that was moved aside and replaced;
// the store queues a buffer_reset event for it itself.
type Reset struct {
	MovedTo  string // path of the moved-aside file ("" if it could not be moved)
	Cause    error  // why it was taken for damaged
	Epoch    uint64 // the epoch of the fresh file
	Salvaged int64  // records copied into the fresh file
	Lost     int64  // records the damaged file held that could not be read; -1: unknown
}

// Item is one pending record.
type Item struct {
	ID   uint64    // record number (rec): per stream, contiguous, never reused
	TS   time.Time // sample time (ms precision)
	Data []byte
	// Fresh: Data is as this process handed it to AppendAsync (taken from
	// memory), not read back from the file, which keeps no checksum.
	Fresh bool
}

// Message is one formed message of a stream.
type Message struct {
	Stream   Stream
	Seq      uint64 // per-stream message seq, strictly increasing
	Payload  []byte
	Items    int       // records it carries
	OldestTS time.Time // sample time of its first record
	First    uint64    // rec of its first record (0 in messages formed before rec existed)
	Last     uint64    // rec of its last record
}

// Head is what a BuildFunc writes into a message besides its records.
type Head struct {
	Seq   uint64 // the message's seq
	Epoch uint64 // the buffer epoch
}

// BuildFunc encodes a message from items (in order, contiguous record
// numbers). It must be pure and fast; an error marks the records as
// unreadable (Form dead-letters them).
type BuildFunc func(h Head, items []Item) ([]byte, error)

// Store is the buffer. Its methods are safe for concurrent use; none of
// AppendAsync, Ack, Notify and Health waits for the disk, and Form waits
// at most CommitInterval + 2 × StallAfter (at the commit window's gate,
// for the write, then for the high-water mark to cover a message sent
// before it is written); Outbox at most StallAfter for the mark.
type Store struct {
	path string
	opts Options
	log  *slog.Logger
	hwm  hwmFile

	// db is the open file, nil while it cannot be used (fault). It is
	// replaced by a compaction or a reset; every use holds dbMu (read),
	// a swap holds it exclusively.
	db   *bolt.DB
	dbMu sync.RWMutex

	mu       sync.Mutex // guards everything below
	closed   bool
	readOnly bool
	lanes    map[Stream]*lane
	memBytes int64 // bytes of queued records and unwritten messages
	epoch    uint64
	reset    *Reset
	fault    error     // why the file cannot be written now (nil: it can)
	faultAt  time.Time // when the fault began
	hwmErr   error     // the last failure to save the high-water mark
	// unreadable are the outbox records Outbox found damaged (logged once).
	unreadable map[Stream]map[uint64]bool
	ageBase    int64 // run time (ms) accumulated by earlier runs
	attached   bool  // a file was attached since Open: numbering follows it
	// flightDB and flightTx are the file and write transaction of the
	// round being committed (nil, 0: none, or its transaction not begun);
	// rounds counts the rounds finished. Stats uses them to count the
	// records and messages of a commit under way once, in the file or in
	// memory.
	flightDB *bolt.DB
	flightTx int
	rounds   uint64

	damage     atomic.Pointer[damageNote] // set by any goroutine that met damage; the writer resets the file
	roundStart atomic.Int64               // unix ns of the commit in progress, 0 when idle
	fileBytes  atomic.Int64               // accounted bytes in the file after the last commit
	work       chan struct{}              // wakes the writer
	notify     chan struct{}              // wakes the publisher (new records or messages)
	compactReq chan struct{}
	markReq    chan struct{} // wakes the marker (marker.go)
	quit       chan struct{} // closed by Close: the marker stops
	marked     chan struct{} // closed and replaced after each save the marker tries (mu)
	markSince  time.Time     // when the marker's save under way began (mu; zero: none)
	wg         sync.WaitGroup

	lastCompacted int64       // file size right after the last compaction (writer only)
	codec         outboxCodec // encodes outbox records (writer only)
	evictLogAt    time.Time
	evictUnlogged int64
	free          freeCache
	formMu        [len(Streams)]sync.Mutex // one Form at a time per stream

	gate    chan struct{} // open window of the group commit (nil: none); closed when it ends (group.go)
	forming int           // Forms let through the gate, still adding their messages
	formed  chan struct{} // a Form let through the gate is done
}

// Open opens (or creates) the buffer at path and checks the file whole.
// It fails within opts.LockTimeout with ErrInUse if another process holds
// it. A damaged file is moved to "<path>.corrupt-<unix time>", a fresh one
// started and the readable records salvaged into it (Reset reports it, and
// a buffer_reset event is queued). A file that cannot be opened or created
// for an I/O reason (read-only, permission, disk error) is no error: the
// store runs in memory, reports it in Health and a buffer_fault event,
// and retries the file with back-off.
func Open(path string, opts Options) (*Store, error) {
	opts.defaults()
	s := newStore(path, opts)
	st := s.hwm.load()
	db, err := openChecked(path, opts)
	switch {
	case err == nil:
	case errors.Is(err, errInUse):
		return nil, fmt.Errorf("buffer %s: %w", path, ErrInUse)
	case isIOError(err):
		s.log.Error("buffer file cannot be used: records are held in memory until it can", "path", path, "err", err)
		s.enterFault(err)
	default:
		db, err = s.replaceDamaged(err, &st)
		if err != nil {
			s.enterFault(err)
		}
	}
	if db != nil {
		if err := s.attach(db, st); err != nil {
			s.guardClose(db)
			if !isIOError(err) && !isDamage(err) {
				return nil, fmt.Errorf("buffer %s: init: %w", path, err)
			}
			s.enterFault(err)
		}
	}
	if s.db == nil {
		s.initLanes(st, nil)
	}
	s.queueNotices()
	s.wg.Add(2)
	go s.writer()
	go s.marker()
	return s, nil
}

func newStore(path string, opts Options) *Store {
	return &Store{
		path: path, opts: opts, log: opts.Logger, hwm: hwmFile{path: path + hwmSuffix},
		lanes:      map[Stream]*lane{},
		work:       make(chan struct{}, 1),
		notify:     make(chan struct{}, 1),
		compactReq: make(chan struct{}, 1),
		markReq:    make(chan struct{}, 1),
		quit:       make(chan struct{}),
		marked:     make(chan struct{}),
		formed:     make(chan struct{}, 1),
		epoch:      1,
	}
}

// Reset returns the damaged file moved aside at Open or since, or nil.
func (s *Store) Reset() *Reset {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reset == nil {
		return nil
	}
	r := *s.reset
	return &r
}

// Path returns the buffer file path.
func (s *Store) Path() string { return s.path }

// Epoch returns the buffer epoch: 1 for a new buffer, incremented on
// every reset.
func (s *Store) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Notify returns a channel that receives (coalesced) when records were
// accepted or written. The publisher waits on it.
func (s *Store) Notify() <-chan struct{} { return s.notify }

func (s *Store) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *Store) wake() {
	select {
	case s.work <- struct{}{}:
	default:
	}
}

// Health says whether the buffer works as it should: ok is false while
// the file cannot be written (records are held in memory: reason says
// why), while a write has taken more than StallAfter (the disk stalls),
// or when the high-water mark could not be saved. The app shows it in
// status ("degraded" with the reason).
func (s *Store) Health() (ok bool, reason string) {
	if t := s.roundStart.Load(); t != 0 {
		if d := time.Since(time.Unix(0, t)); d > StallAfter {
			return false, fmt.Sprintf("buffer disk stalled: a write has taken %s", d.Round(100*time.Millisecond))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.readOnly:
		return true, ""
	case s.fault != nil:
		return false, "buffer file unusable, records held in memory: " + s.fault.Error()
	case s.hwmErr != nil:
		return false, "buffer high-water mark not saved: " + s.hwmErr.Error()
	}
	return true, ""
}

// stalled reports whether a write has been in progress for StallAfter.
func (s *Store) stalled() bool {
	t := s.roundStart.Load()
	return t != 0 && time.Since(time.Unix(0, t)) > StallAfter
}

// Append queues a record and waits until it is written to the file
// (fsynced) or ctx ends: a telemetry or statistics record up to
// Options.CommitInterval longer than the write. A nil error means the
// record survives a crash.
func (s *Store) Append(ctx context.Context, stream Stream, ts time.Time, data []byte) error {
	ch := make(chan error, 1)
	if err := s.AppendAsync(stream, ts, data, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("buffer: append not confirmed: %w", ctx.Err())
	}
}

// Close stops accepting records, writes what is held in memory if the
// file can be written (at once: an open commit window ends), and closes
// the file. Records it could not write
// are logged as lost (their done callbacks get ErrClosed). It is safe to
// call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	s.wake()
	s.wg.Wait()
	if !s.readOnly {
		s.saveExactHWM() // nothing more is handed out: the next start goes on with the next numbers
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return nil
	}
	err := guard(func() error { return s.db.Close() })
	s.db = nil
	if err != nil {
		return fmt.Errorf("buffer %s: close: %w", s.path, err)
	}
	return nil
}

func validStream(s Stream) bool {
	for _, x := range Streams {
		if x == s {
			return true
		}
	}
	return false
}

func streamIndex(s Stream) int {
	for i, x := range Streams {
		if x == s {
			return i
		}
	}
	return -1
}
