package store

import (
	"errors"
	"log/slog"
	"time"
)

// Defaults of Options.
const (
	// DefaultLockTimeout is how long Open waits for the file lock held by
	// another process before failing with ErrInUse (field case S1: ~1 s).
	DefaultLockTimeout = time.Second
	// DefaultMaxBytes caps the queued bytes in the file (256 MiB, as config.Buffer).
	DefaultMaxBytes = 256 << 20
	// DefaultMaxAge is how long an unpublished telemetry or event record is
	// kept, counted in agent run time (monotonic, never the wall clock):
	// 30 days, the record-keeping period for major hazard sources. Alarms
	// are never evicted by age.
	DefaultMaxAge = 30 * 24 * time.Hour
	// DefaultQueueBytes bounds the record bytes held in memory: records
	// not yet written (a slow or stalled disk) and, while the file cannot
	// be written, the whole queue. 16 MiB holds about 80 000 readings:
	// over 15 s of a 5 000 readings/s site while a backlog drains (issue
	// 10 item 8: 1.6 s was too little). Beyond it the oldest telemetry is
	// dropped first and counted.
	DefaultQueueBytes = 16 << 20
	// DefaultMaxBatch bounds the records committed in one transaction, so
	// a round (and the drain's forms and acks sharing it) stays short.
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
	// StallAfter is how long a write may take before the disk counts as
	// stalled: a message formed meanwhile is handed to the publisher from
	// memory instead of waiting for it to be written (issue 10 item 3:
	// alarms never wait for the disk beyond 1 s).
	StallAfter = time.Second
	// DefaultRetryMin and DefaultRetryMax bound the back-off between tries
	// of a file that could not be written.
	DefaultRetryMin = time.Second
	DefaultRetryMax = 30 * time.Second
	// AckFlushAfter is how late acks (and the deletions they cause) are
	// written when nothing else is (CommitInterval > 0): they ride on the
	// next commit otherwise. An ack not yet written when the agent dies
	// only means that message is sent again, byte for byte (same seq).
	AckFlushAfter = 5 * time.Second
)

// Errors returned by the store.
var (
	// ErrInUse means another process (the running agent) holds the file lock.
	ErrInUse = errors.New("buffer in use by the running agent")
	// ErrBusy is returned by AppendAsync of a read-only store (OpenReadOnly).
	ErrBusy = errors.New("buffer busy: append queue full")
	// ErrClosed is returned after Close, and to a record's done callback
	// when Close found it still only in memory (the file unwritable).
	ErrClosed = errors.New("buffer closed")
	// ErrEvicted is passed to a record's done callback when the memory
	// bound dropped it before it was written; the loss is reported in a
	// data_loss event.
	ErrEvicted = errors.New("record evicted from the memory queue before it was written")
)

// Options tunes a Store. Zero values take the defaults above.
type Options struct {
	LockTimeout time.Duration // wait for the file lock; default DefaultLockTimeout
	MaxBytes    int64         // cap of queued item+message bytes in the file; default DefaultMaxBytes
	MaxAge      time.Duration // drop telemetry and events older than this (run time); default DefaultMaxAge
	QueueBytes  int64         // record bytes held in memory; default DefaultQueueBytes
	MaxBatch    int           // records per commit; default DefaultMaxBatch
	// CommitInterval is the group-commit window: what arrives within it
	// after the first pending telemetry or statistics record (or message)
	// is written in one fsync'd transaction, and acks ride on those
	// commits. It bounds what a power cut can lose of records not yet
	// committed. Alarms and events are written at once. Default 0: every
	// round commits at once (config buffer.commit_interval sets 200 ms).
	CommitInterval time.Duration
	NoSync         bool             // skip fsync: ONLY for benchmarks and tests of logic
	Now            func() time.Time // wall clock (event ts only); default time.Now
	// After returns a channel that receives once d has passed: the
	// writer's timers (CommitInterval, AckFlushAfter, retries of the
	// high-water mark). Default time.After; tests inject a fake clock.
	After func(d time.Duration) <-chan time.Time
	// Mono is the monotonic clock that ages records: the time since an
	// arbitrary start. Default: time since Open on Go's monotonic clock.
	// The file keeps the run time accumulated over earlier runs.
	Mono   func() time.Duration
	Logger *slog.Logger // default slog.Default()

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
	// below MinFree. Default DefaultFrozenFloor (1 MiB); negative: no floor.
	FrozenFloor int64
	// FreeSpace returns the free bytes of the filesystem holding dir;
	// default statfs. Tests inject a small disk.
	FreeSpace func(dir string) (int64, error)
	// RetryMin and RetryMax bound the back-off of a file that could not
	// be written; defaults DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration

	// BeforeCommit, if set, runs in the writer goroutine before every
	// commit transaction. Tests use it to simulate a stalling disk (S5).
	BeforeCommit func()
	// Fault, if set, is called inside every bbolt transaction with its
	// kind ("commit", "view", "open"): an error it returns fails the
	// transaction as the disk would, a panic is taken as bbolt's. Tests
	// only (the fault-injecting store of the queue suite).
	Fault func(op string) error
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.LockTimeout, DefaultLockTimeout)
	def(&o.MaxAge, DefaultMaxAge)
	def(&o.RetryMin, DefaultRetryMin)
	def(&o.RetryMax, DefaultRetryMax)
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.CommitInterval < 0 {
		o.CommitInterval = 0
	}
	if o.Mono == nil {
		start := time.Now()
		o.Mono = func() time.Duration { return time.Since(start) }
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
