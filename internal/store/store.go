// Package store is hazmon's store-and-forward buffer: a bbolt file holding,
// for each stream (telemetry, alarm, event), a queue of pending items and an
// outbox of formed messages waiting for their PUBACK.
//
// Life of a record:
//
//	Append (group commit, one fsync per batch) → pending item
//	Form   (one transaction: next seq, items → outbox {seq, payload})
//	Ack    (after PUBACK: the outbox record is deleted)
//
// Because the message and its seq are written in the same transaction that
// removes its items, a resend after a crash is an exact repeat with the
// same seq. Nothing leaves the file before Ack names it, except by the
// documented eviction (MaxBytes, MaxAge), which is counted and reported as
// a data_loss event in the event stream.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/hazmon/hazmon/internal/contract"
)

// Stream names one ordered queue; each has its own message seq.
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

// Defaults of Options.
const (
	// DefaultLockTimeout is how long Open waits for the file lock held by
	// another process before failing with ErrInUse (field case S1: ~1 s).
	DefaultLockTimeout = time.Second
	// DefaultMaxBytes caps the queued bytes (256 MiB, as config.Buffer).
	DefaultMaxBytes = 256 << 20
	// DefaultMaxAge is how long an unpublished record is kept: 30 days,
	// the record-keeping period for major hazard sources.
	DefaultMaxAge = 30 * 24 * time.Hour
	// DefaultQueueLen bounds appends waiting for the writer; beyond it
	// AppendAsync fails fast with ErrBusy instead of blocking the caller.
	DefaultQueueLen = 8192
	// DefaultMaxBatch bounds the items committed in one transaction.
	DefaultMaxBatch = 4096
	// DefaultCompactMinSize: files smaller than this are never compacted.
	DefaultCompactMinSize = 16 << 20
	// CompactRatio: a file is compacted when it is more than this many
	// times the accounted live data (the backlog has drained).
	CompactRatio = 8
	// DefaultMinFree is the free disk space the buffer leaves on its
	// filesystem (32 MiB: room for logs and an OS update on an SD card).
	DefaultMinFree = 32 << 20
	// DefaultFrozenFloor is Options.FrozenFloor's default.
	DefaultFrozenFloor = 1 << 20
)

// Errors returned by the store.
var (
	// ErrInUse means another process (the running agent) holds the file lock.
	ErrInUse = errors.New("buffer in use by the running agent")
	// ErrBusy means the append queue is full (the disk is slow or stalled):
	// the caller must report a buffer fault, never wait.
	ErrBusy = errors.New("buffer busy: append queue full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("buffer closed")
)

// Options tunes a Store. Zero values take the defaults above.
type Options struct {
	LockTimeout time.Duration    // wait for the file lock; default DefaultLockTimeout
	MaxBytes    int64            // cap of queued item+message bytes; default DefaultMaxBytes
	MaxAge      time.Duration    // drop records older than this; default DefaultMaxAge
	QueueLen    int              // appends waiting for commit; default DefaultQueueLen
	MaxBatch    int              // items per commit; default DefaultMaxBatch
	CommitDelay time.Duration    // optional extra wait to grow a batch; default 0 (commit as soon as the writer is free)
	NoSync      bool             // skip fsync: ONLY for benchmarks and tests of logic
	Now         func() time.Time // clock; default time.Now
	Logger      *slog.Logger     // default slog.Default()

	// CompactMinSize: the file is compacted (copied live data only, then
	// swapped in) once the backlog has drained, when it is at least this
	// big and more than CompactRatio times the live data; default
	// DefaultCompactMinSize (field case S2). Negative: never.
	CompactMinSize int64
	// MinFree is the free disk space kept on the buffer's filesystem: when
	// free space falls below it the effective cap shrinks to what fits, so
	// the oldest telemetry is evicted (and counted) instead of the disk
	// filling up (S2). Default DefaultMinFree; negative disables the check.
	MinFree int64
	// FrozenFloor is the least the cap is frozen at when the disk goes
	// below MinFree, so that a buffer opened empty on a nearly full disk
	// still keeps thousands of alarms instead of evicting each one.
	// Default DefaultFrozenFloor (1 MiB); negative: no floor.
	FrozenFloor int64
	// FreeSpace returns the free bytes of the filesystem holding dir;
	// default statfs. Tests inject a small disk.
	FreeSpace func(dir string) (int64, error)
	// BeforeCommit, if set, runs in the writer goroutine before every
	// commit transaction. Tests use it to simulate a stalling disk (S5).
	BeforeCommit func()
}

func (o *Options) defaults() {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CompactMinSize == 0 {
		o.CompactMinSize = DefaultCompactMinSize
	}
	if o.FrozenFloor == 0 {
		o.FrozenFloor = DefaultFrozenFloor
	}
	if o.MinFree == 0 {
		o.MinFree = DefaultMinFree
	}
	if o.FreeSpace == nil {
		o.FreeSpace = statfsFree
	}
}

// Reset describes a buffer file that could not be opened and was moved
// aside; the app must publish a buffer_reset event for it.
type Reset struct {
	MovedTo string // path of the moved-aside file
	Cause   error  // why it could not be opened
}

// Item is one pending record: its sample time and its encoded body.
type Item struct {
	ID   uint64    // per-stream, strictly increasing
	TS   time.Time // sample time (ms precision)
	Data []byte
}

// Message is one formed message in a stream's outbox.
type Message struct {
	Stream   Stream
	Seq      uint64 // per-stream message seq, strictly increasing, starts at 1
	Payload  []byte
	Items    int       // records it carries
	OldestTS time.Time // sample time of its first record
}

// BuildFunc encodes the message with sequence number seq from items (in
// order). It runs inside the write transaction: it must be pure and fast.
type BuildFunc func(seq uint64, items []Item) ([]byte, error)

// Store is an open buffer file. Its methods are safe for concurrent use.
type Store struct {
	// db is replaced by a compaction; every use holds dbMu (read), the
	// swap holds it exclusively. nil after a failed swap (see dbErr).
	db    *bolt.DB
	dbMu  sync.RWMutex
	dbErr error
	path  string
	opts  Options
	reset *Reset
	log   *slog.Logger

	mu     sync.RWMutex // guards closed and sends on reqs
	closed bool
	reqs   chan appendReq
	notify chan struct{}
	wg     sync.WaitGroup

	compactReq    chan struct{} // Ack asks the writer to consider a compaction
	lastCompacted int64         // file size right after the last compaction (writer only)
	evictLogAt    time.Time     // last eviction warning (writer only): at most one per EvictLogEvery
	evictUnlogged int64         // records evicted since that warning (writer only)
	free          freeCache
}

type appendReq struct {
	stream Stream
	ts     int64
	data   []byte
	done   func(error)
}

var (
	bucketMeta = []byte("meta")
	keyBytes   = []byte("bytes")
	keyEvicted = []byte("evicted/") // + stream
)

func itemsBucket(s Stream) []byte  { return []byte("items/" + string(s)) }
func outboxBucket(s Stream) []byte { return []byte("outbox/" + string(s)) }

// item value: 8-byte ts (unix ms) + data. outbox value: 8-byte oldest ts +
// 4-byte item count + payload. The accounted size adds the key.
const (
	itemHdr   = 8
	outboxHdr = 12
	keyLen    = 8
)

// Open opens (or creates) the buffer at path. It fails within
// opts.LockTimeout with ErrInUse if another process holds it. A file that
// bbolt cannot open is moved to "<path>.corrupt-<unix time>" and a fresh
// buffer is created; Reset then reports it.
func Open(path string, opts Options) (*Store, error) {
	opts.defaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("buffer %s: create folder: %w", path, err)
	}
	db, err := openBolt(path, opts)
	var reset *Reset
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("buffer %s: %w", path, ErrInUse)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("buffer %s: %w", path, err)
	default:
		moved := fmt.Sprintf("%s.corrupt-%d", path, opts.Now().Unix())
		if rerr := os.Rename(path, moved); rerr != nil {
			return nil, fmt.Errorf("buffer %s: unreadable (%v) and cannot be moved aside: %w", path, err, rerr)
		}
		opts.Logger.Error("buffer file unreadable, moved aside; starting a fresh buffer", "path", path, "moved_to", moved, "err", err)
		reset = &Reset{MovedTo: moved, Cause: err}
		if db, err = openBolt(path, opts); err != nil {
			return nil, fmt.Errorf("buffer %s: create fresh file after reset: %w", path, err)
		}
	}
	s := &Store{
		db: db, path: path, opts: opts, reset: reset, log: opts.Logger,
		reqs:       make(chan appendReq, opts.QueueLen),
		notify:     make(chan struct{}, 1),
		compactReq: make(chan struct{}, 1),
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("buffer %s: init: %w", path, err)
	}
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

// openBolt opens the file and checks its structure is readable; bbolt may
// panic on a damaged page, which is turned into an error.
func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			db, err = nil, fmt.Errorf("bbolt panic: %v", r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, err
	}
	// Walk the top level and every bucket's first key: a cheap probe that
	// touches the root pages without a full consistency check.
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			b.Cursor().First()
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		for _, st := range Streams {
			if _, err := tx.CreateBucketIfNotExists(itemsBucket(st)); err != nil {
				return err
			}
			ob, err := tx.CreateBucketIfNotExists(outboxBucket(st))
			if err != nil {
				return err
			}
			if s.reset != nil && ob.Sequence() == 0 {
				// A fresh file after a reset: start the seqs from the clock
				// (unix ms) so the bureau never sees a seq go backwards.
				if err := ob.SetSequence(uint64(s.opts.Now().UnixMilli())); err != nil {
					return err
				}
			}
		}
		if meta.Get(keyBytes) == nil {
			putU64(meta, keyBytes, 0)
		}
		_, err = s.evictLocked(tx)
		return err
	})
}

// Reset returns the moved-aside file if Open had to start a fresh buffer,
// or nil.
func (s *Store) Reset() *Reset { return s.reset }

// Path returns the buffer file path.
func (s *Store) Path() string { return s.path }

// Notify returns a channel that receives (coalesced) after every commit
// that added records. The publisher waits on it.
func (s *Store) Notify() <-chan struct{} { return s.notify }

func (s *Store) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// AppendAsync queues a record without waiting for the disk. done (may be
// nil) is called from the writer goroutine once the record is committed
// (nil) or failed. It returns ErrBusy at once if the queue is full and
// ErrClosed after Close; done is not called then.
func (s *Store) AppendAsync(stream Stream, ts time.Time, data []byte, done func(error)) error {
	if !validStream(stream) {
		return fmt.Errorf("buffer: unknown stream %q", stream)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.reqs <- appendReq{stream: stream, ts: ts.UnixMilli(), data: data, done: done}:
		return nil
	default:
		return ErrBusy
	}
}

// Append queues a record and waits until it is committed (fsynced) or ctx
// ends. A nil error means the record survives a crash or power loss.
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

func validStream(s Stream) bool {
	for _, x := range Streams {
		if x == s {
			return true
		}
	}
	return false
}

// writer is the single group-commit goroutine: it takes everything queued
// (up to MaxBatch), commits it in one transaction (one fsync) and reports.
func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]appendReq, 0, s.opts.MaxBatch)
	for {
		var req appendReq
		var ok bool
		select {
		case req, ok = <-s.reqs:
		case <-s.compactReq:
			if _, _, err := s.maybeCompact(false); err != nil {
				s.log.Error("buffer compaction failed", "path", s.path, "err", err)
			}
			continue
		}
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		if s.opts.CommitDelay > 0 {
			timer := time.NewTimer(s.opts.CommitDelay)
		grow:
			for len(batch) < s.opts.MaxBatch {
				select {
				case r, ok := <-s.reqs:
					if !ok {
						break grow
					}
					batch = append(batch, r)
				case <-timer.C:
					break grow
				}
			}
			timer.Stop()
		}
	drain:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		if s.opts.BeforeCommit != nil {
			s.opts.BeforeCommit()
		}
		err := s.commit(batch)
		if err != nil {
			s.log.Error("buffer commit failed", "path", s.path, "records", len(batch), "err", err)
		}
		for _, r := range batch {
			if r.done != nil {
				r.done(err)
			}
		}
		if err == nil {
			s.signal()
		}
	}
}

func (s *Store) commit(batch []appendReq) error {
	err := s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var added int64
		for _, r := range batch {
			b := tx.Bucket(itemsBucket(r.stream))
			id, err := b.NextSequence()
			if err != nil {
				return err
			}
			v := make([]byte, itemHdr+len(r.data))
			binary.BigEndian.PutUint64(v, uint64(r.ts))
			copy(v[itemHdr:], r.data)
			if err := b.Put(u64key(id), v); err != nil {
				return err
			}
			added += int64(keyLen + len(v))
		}
		putU64(meta, keyBytes, uint64(int64(getU64(meta, keyBytes))+added))
		_, err := s.evictLocked(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("buffer %s: commit %d records: %w", s.path, len(batch), err)
	}
	return nil
}

// Form builds the next message of stream from up to maxItems pending items
// (and, beyond the first, at most maxBytes of item data), assigns the
// stream's next seq and moves the items into the outbox, all in one
// transaction. ok is false if the stream has no pending items.
func (s *Store) Form(stream Stream, maxItems, maxBytes int, build BuildFunc) (msg Message, ok bool, err error) {
	if maxItems <= 0 {
		maxItems = 1
	}
	err = s.update(func(tx *bolt.Tx) error {
		ib := tx.Bucket(itemsBucket(stream))
		if ib == nil {
			return fmt.Errorf("unknown stream %q", stream)
		}
		var items []Item
		var keys [][]byte
		size, freed := 0, 0
		c := ib.Cursor()
		for k, v := c.First(); k != nil && len(items) < maxItems; k, v = c.Next() {
			d := v[itemHdr:]
			if len(items) > 0 && maxBytes > 0 && size+len(d) > maxBytes {
				break
			}
			size += len(d)
			freed += keyLen + len(v)
			items = append(items, Item{ID: binary.BigEndian.Uint64(k), TS: time.UnixMilli(int64(binary.BigEndian.Uint64(v))), Data: append([]byte(nil), d...)})
			keys = append(keys, append([]byte(nil), k...))
		}
		if len(items) == 0 {
			return nil
		}
		ob := tx.Bucket(outboxBucket(stream))
		seq, err := ob.NextSequence()
		if err != nil {
			return err
		}
		payload, err := build(seq, items)
		if err != nil {
			return fmt.Errorf("build message seq %d: %w", seq, err)
		}
		v := make([]byte, outboxHdr+len(payload))
		binary.BigEndian.PutUint64(v, uint64(items[0].TS.UnixMilli()))
		binary.BigEndian.PutUint32(v[8:], uint32(len(items)))
		copy(v[outboxHdr:], payload)
		if err := ob.Put(u64key(seq), v); err != nil {
			return err
		}
		for _, k := range keys {
			if err := ib.Delete(k); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		putU64(meta, keyBytes, uint64(int64(getU64(meta, keyBytes))-int64(freed)+int64(keyLen+len(v))))
		msg = Message{Stream: stream, Seq: seq, Payload: payload, Items: len(items), OldestTS: items[0].TS}
		ok = true
		return nil
	})
	if err != nil {
		return Message{}, false, fmt.Errorf("buffer %s: form %s message: %w", s.path, stream, err)
	}
	return msg, ok, nil
}

// Outbox returns up to max unacknowledged messages of stream with a seq
// greater than after, in seq order (max <= 0: all).
func (s *Store) Outbox(stream Stream, after uint64, max int) ([]Message, error) {
	var out []Message
	err := s.view(func(tx *bolt.Tx) error {
		ob := tx.Bucket(outboxBucket(stream))
		if ob == nil {
			return fmt.Errorf("unknown stream %q", stream)
		}
		c := ob.Cursor()
		for k, v := c.Seek(u64key(after + 1)); k != nil && (max <= 0 || len(out) < max); k, v = c.Next() {
			out = append(out, Message{
				Stream:   stream,
				Seq:      binary.BigEndian.Uint64(k),
				OldestTS: time.UnixMilli(int64(binary.BigEndian.Uint64(v))),
				Items:    int(binary.BigEndian.Uint32(v[8:])),
				Payload:  append([]byte(nil), v[outboxHdr:]...),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("buffer %s: read %s outbox: %w", s.path, stream, err)
	}
	return out, nil
}

// Ack deletes the outbox message (stream, seq) after its PUBACK. Acking a
// seq that is not there (already acked) is not an error.
func (s *Store) Ack(stream Stream, seq uint64) error {
	var left int64
	err := s.update(func(tx *bolt.Tx) error {
		ob := tx.Bucket(outboxBucket(stream))
		if ob == nil {
			return fmt.Errorf("unknown stream %q", stream)
		}
		k := u64key(seq)
		v := ob.Get(k)
		if v == nil {
			return nil
		}
		n := keyLen + len(v)
		if err := ob.Delete(k); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		left = max(0, int64(getU64(meta, keyBytes))-int64(n))
		putU64(meta, keyBytes, uint64(left))
		return nil
	})
	if err != nil {
		return fmt.Errorf("buffer %s: ack %s seq %d: %w", s.path, stream, seq, err)
	}
	if s.opts.CompactMinSize > 0 && left*CompactRatio < s.opts.CompactMinSize {
		select { // the writer checks the file size and compacts if worth it
		case s.compactReq <- struct{}{}:
		default:
		}
	}
	return nil
}

// Close stops accepting appends, commits what is queued and closes the
// file. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	s.wg.Wait()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("buffer %s: close: %w", s.path, err)
	}
	return nil
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

// dataLossEvent encodes the event record queued after an eviction.
func dataLossEvent(now time.Time, from, to int64, n int64, reason, detail string) ([]byte, error) {
	return contract.Marshal(contract.Event{V: contract.Version, Type: contract.EventDataLoss, TS: now.UnixMilli(), FromTS: from, ToTS: to, Readings: n, Reason: reason, Detail: detail})
}
