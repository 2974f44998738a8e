package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// appendMany queues n records of size bytes from 8 goroutines and waits
// until all are committed.
func appendMany(t *testing.T, s *Store, n, size int) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = 'x'
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if err := s.Append(context.Background(), Telemetry, t0.Add(time.Duration(i)*time.Millisecond), data); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// S2: a long outage grows the file; once the backlog has drained (every
// message acked) the file is compacted back, seqs and IDs continue, and
// the compacted file reopens with its content.
func TestStore_CompactsAfterDrain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := open(t, path, Options{NoSync: true, CompactMinSize: 1 << 20})
	appendMany(t, s, 20000, 400) // ~8.5 MB of backlog
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	grown := st.FileSize
	if grown < 8<<20 {
		t.Fatalf("file is %d bytes after an 8 MB backlog", grown)
	}
	var last uint64
	for {
		m, ok, err := s.Form(Telemetry, 500, 0, joinBuild)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if err := s.Ack(Telemetry, m.Seq); err != nil {
			t.Fatal(err)
		}
		last = m.Seq
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err = s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.FileSize < grown/8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file still %d bytes (was %d) 30 s after the backlog drained", st.FileSize, grown)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("compaction left %s.compact behind: %v", path, err)
	}
	// Sequences survive the copy: the next message is last+1, item IDs go on.
	lastID, _ := s.LastID(Telemetry)
	appendN(t, s, Telemetry, 0, 3)
	m, ok, err := s.Form(Telemetry, 10, 0, joinBuild)
	if err != nil || !ok || m.Seq != last+1 {
		t.Fatalf("after compaction: Form = seq %d ok %v err %v, want seq %d", m.Seq, ok, err, last+1)
	}
	if id, _ := s.LastID(Telemetry); id != lastID+3 {
		t.Fatalf("LastID after compaction and 3 appends = %d, want %d", id, lastID+3)
	}
	appendN(t, s, Telemetry, 3, 2)
	s.Close()
	s2 := open(t, path, Options{})
	if st, _ := s2.Stats(); st.Streams[Telemetry].Pending != 2 || st.Streams[Telemetry].Outbox != 1 || st.Streams[Telemetry].LastSeq != last+1 {
		t.Fatalf("reopened compacted file: %+v", st.Streams[Telemetry])
	}
	t.Logf("file %d bytes with the backlog, %d after draining and compaction", grown, st.FileSize)
}

// A busy buffer (backlog not drained) is not compacted.
func TestStore_NoCompactionWithBacklog(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "buffer.db"), Options{NoSync: true, CompactMinSize: 1 << 20})
	appendMany(t, s, 5000, 400)
	before, after, err := s.maybeCompact(false)
	if err != nil || after != before {
		t.Fatalf("compacted a file full of backlog: %d → %d (%v)", before, after, err)
	}
}

// S2: below the free-space reserve the buffer stops growing: new records
// evict the oldest telemetry (counted) instead of filling the disk.
func TestStore_DiskReserveFreezesCap(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 40)
	s := open(t, filepath.Join(t.TempDir(), "buffer.db"), Options{
		MinFree: 32 << 20, FrozenFloor: -1, FreeSpace: func(string) (int64, error) { return free.Load(), nil }})
	appendN(t, s, Telemetry, 0, 50)
	free.Store(1 << 20) // the SD card is nearly full
	time.Sleep(1100 * time.Millisecond)
	appendN(t, s, Telemetry, 50, 1)
	st, _ := s.Stats()
	frozen := st.Bytes
	appendN(t, s, Telemetry, 51, 100)
	st, _ = s.Stats()
	tel := st.Streams[Telemetry]
	if st.Bytes > frozen+64 || tel.Evicted < 100 {
		t.Fatalf("disk below reserve: bytes %d (frozen at %d), evicted %d; want no growth and ≥100 evicted", st.Bytes, frozen, tel.Evicted)
	}
	if ev := dataLoss(t, s); len(ev) != 1 || ev[0].Readings != int64(tel.Evicted) {
		t.Fatalf("data_loss events %+v, want one counting %d", ev, tel.Evicted)
	}
	free.Store(1 << 40)
	time.Sleep(1100 * time.Millisecond)
	appendN(t, s, Telemetry, 200, 20)
	if st2, _ := s.Stats(); st2.Streams[Telemetry].Evicted != tel.Evicted {
		t.Fatalf("still evicting after the disk has room again: %d → %d", tel.Evicted, st2.Streams[Telemetry].Evicted)
	}
}

// S5: while every commit stalls 200 ms (a slow SD card's fsync), appends
// at 1000 readings/s are never refused and never wait: the poller only
// queues. Everything is committed once the disk catches up.
func TestStore_SlowDiskDoesNotBlockAppends(t *testing.T) {
	var commits atomic.Int64
	s := open(t, filepath.Join(t.TempDir(), "buffer.db"), Options{
		BeforeCommit: func() { commits.Add(1); time.Sleep(200 * time.Millisecond) }})
	var done atomic.Int64
	var worst time.Duration
	const n = 2000
	tk := time.NewTicker(time.Millisecond)
	defer tk.Stop()
	for i := 0; i < n; i++ {
		<-tk.C
		t1 := time.Now()
		err := s.AppendAsync(Telemetry, t0.Add(time.Duration(i)*time.Millisecond), []byte(fmt.Sprint(i)), func(err error) {
			if err == nil {
				done.Add(1)
			}
		})
		worst = max(worst, time.Since(t1))
		if err != nil {
			t.Fatalf("append %d refused while the disk stalls: %v", i, err)
		}
	}
	// An append that waited for the disk would take ≥ 200 ms.
	if worst > 150*time.Millisecond {
		t.Fatalf("an append waited %v behind the stalled disk", worst)
	}
	deadline := time.Now().Add(30 * time.Second)
	for done.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d committed", done.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Group commit: a handful of 200 ms commits carried all 2000 readings.
	if c := commits.Load(); c > 40 {
		t.Fatalf("%d commits for %d readings: group commit not grouping under a slow disk", c, n)
	}
	t.Logf("%d readings in %d stalled commits; slowest append %v", n, commits.Load(), worst)
}

// A buffer opened empty on a nearly full disk keeps what it is given up to
// FrozenFloor: alarms are not evicted one by one as they arrive.
func TestStore_DiskLowAtOpenKeepsAlarms(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "buffer.db"), Options{
		MinFree: 32 << 20, FreeSpace: func(string) (int64, error) { return 1 << 20, nil }})
	appendN(t, s, Alarm, 0, 20)
	st, _ := s.Stats()
	if a := st.Streams[Alarm]; a.Pending != 20 || a.Evicted != 0 {
		t.Fatalf("alarms on a nearly full disk: %+v, want 20 kept, none evicted", a)
	}
}
