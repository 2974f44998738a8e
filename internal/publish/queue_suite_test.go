package publish

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// The queue suite: one set of cases (poison record, disk full, stalled
// fsync, panic in bbolt, clock step ±1 year, reset of the file) run over
// the queue the publisher consumes in each of its forms: the bbolt store
// with the fault made real where the test can (a record damaged in the
// file, a full tmpfs, a file overwritten under the running store), the
// same store with the fault injected (Options.Fault, BeforeCommit), and
// the store running on memory alone (a data_dir that cannot hold a file).
// A consumer drains it through the publisher's own next and build, and
// each case shows: no stall (every record reaches it within a bound), no
// silent loss (every record number is received or named by a data_loss
// event, or counted lost by a buffer_reset), seq strictly increasing,
// rec contiguous, epoch incremented by a reset.

func TestQueueSuite(t *testing.T) {
	cases := []struct {
		name string
		run  func(*testing.T, *harness)
		skip func(queueKind) bool
	}{
		{"poison record", casePoison, nil},
		{"disk full", caseDiskFull, func(k queueKind) bool { return k.memory }},
		{"stalled fsync", caseStall, func(k queueKind) bool { return k.memory }},
		{"panic in bbolt", casePanic, func(k queueKind) bool { return k.memory }},
		{"clock step ±1 year", caseClockStep, nil},
		{"reset", caseReset, func(k queueKind) bool { return k.memory }},
	}
	for _, k := range queueKinds {
		for _, c := range cases {
			t.Run(k.name+"/"+c.name, func(t *testing.T) {
				if c.skip != nil && c.skip(k) {
					t.Skip("the memory-only queue has no file to fault")
				}
				c.run(t, newHarness(t, k))
			})
		}
	}
}

// A record that cannot be formed goes to the dead letters; the stream
// goes on, and a data_loss event names its rec.
func casePoison(t *testing.T, h *harness) {
	h.add(store.Telemetry, 5)
	var bad uint64
	if h.kind.inject || h.kind.memory {
		if err := h.q.AppendAsync(store.Telemetry, time.Now(), []byte(`{"sensor":"CH4-101","value":`), nil); err != nil {
			t.Fatal(err)
		}
		bad, _ = h.q.LastID(store.Telemetry)
		h.c.appended(store.Telemetry, bad)
	} else { // a bit flipped in the file: bbolt keeps no checksum on data pages
		h.drained(10 * time.Second)
		h.close()
		bad = flipRecord(t, h.path)
		h.c.appended(store.Telemetry, bad)
		h.open()
	}
	h.add(store.Telemetry, 5)
	h.drained(20 * time.Second)
	if e := h.c.lossFor(store.Telemetry, bad); e == nil || e.Reason != store.ReasonUnreadable {
		t.Fatalf("no unreadable data_loss for rec %d: %+v", bad, h.c.losses)
	}
	if d, err := h.q.Dead(store.Telemetry, 0, 0); err != nil || len(d) != 1 || d[0].Rec != bad {
		t.Fatalf("dead letters %+v %v, want rec %d", d, err, bad)
	}
}

// flipRecord appends a record to the closed file's telemetry items whose
// body is not JSON and returns its rec.
func flipRecord(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rec uint64
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("items/telemetry"))
		rec = b.Sequence() + 1
		k := make([]byte, 8)
		for i := range 8 {
			k[i] = byte(rec >> (56 - 8*i))
		}
		v := append(make([]byte, 8), []byte(`{"sensor":"CH4-1\x81`)...)
		if err := b.Put(k, v); err != nil {
			return err
		}
		return b.SetSequence(rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// A full disk: records and alarms keep reaching the consumer from memory,
// Health says why, a buffer_fault event tells the bureau; once the disk
// has room the memory goes into the file and nothing was lost.
func caseDiskFull(t *testing.T, h *harness) {
	h.add(store.Telemetry, 5)
	h.drained(10 * time.Second)
	var release func()
	if h.kind.inject {
		h.f.set(func(f *faults) { f.commitErr = fmt.Errorf("write %s: %w", h.path, syscall.ENOSPC) })
		release = func() { h.f.set(func(f *faults) { f.commitErr = nil }) }
	} else {
		release = fullDisk(t, h)
	}
	h.add(store.Telemetry, 2000) // more than the file has room for
	h.add(store.Alarm, 2)
	h.drained(20 * time.Second) // from memory
	if ok, why := h.q.Health(); ok || !strings.Contains(why, "no space") {
		t.Fatalf("health with the disk full: %v %q", ok, why)
	}
	if !h.c.sawEvent(contract.EventBufferFault, "disk_full") {
		t.Fatalf("no buffer_fault disk_full event: %s", h.c.summary(h.q))
	}
	release()
	deadline := time.Now().Add(20 * time.Second)
	for ok, _ := h.q.Health(); !ok; ok, _ = h.q.Health() {
		if time.Now().After(deadline) {
			_, why := h.q.Health()
			var st syscall.Statfs_t
			_ = syscall.Statfs(filepath.Dir(h.path), &st)
			ents, _ := os.ReadDir(filepath.Dir(h.path))
			var files []string
			for _, e := range ents {
				fi, _ := e.Info()
				files = append(files, fmt.Sprintf("%s=%d", e.Name(), fi.Size()))
			}
			t.Fatalf("the store never took the file back: %s (free %d bytes; %v)", why, int64(st.Bavail)*st.Bsize, files)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.add(store.Telemetry, 5)
	h.drained(20 * time.Second)
	if !h.c.sawEvent(contract.EventBufferFault, "recovered") {
		t.Fatal("no buffer_fault recovered event")
	}
}

// fullDisk moves the harness onto a small tmpfs, fills it, and returns
// what frees it. It skips where mounting is not permitted.
func fullDisk(t *testing.T, h *harness) func() {
	t.Helper()
	h.close()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	for _, name := range []string{"buffer.db", "buffer.db.hwm"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(h.path), name))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	h.path = filepath.Join(dir, "buffer.db")
	h.open()
	filler := filepath.Join(dir, "filler")
	fh, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := fh.Write(chunk); err != nil {
			break
		}
	}
	fh.Close()
	return func() { os.Remove(filler) }
}

// A commit that stalls 3 s: an alarm accepted meanwhile reaches the
// consumer from memory within the 1 s bound (and a little), Health says
// the disk stalls, and once it is written no record arrives twice.
func caseStall(t *testing.T, h *harness) {
	h.add(store.Telemetry, 3)
	h.drained(10 * time.Second)
	h.f.set(func(f *faults) { f.stall = 3 * time.Second })
	h.add(store.Telemetry, 1) // its commit stalls
	time.Sleep(100 * time.Millisecond)
	at := time.Now()
	recs := h.add(store.Alarm, 1)
	for !h.c.has(store.Alarm, recs[0]) {
		if time.Since(at) > 2500*time.Millisecond {
			t.Fatalf("an alarm waited %v behind a stalled disk", time.Since(at))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("alarm delivered %v after it was accepted, the disk stalled", time.Since(at).Round(time.Millisecond))
	if ok, why := h.q.Health(); ok || !strings.Contains(why, "stalled") {
		t.Fatalf("health during the stall: %v %q", ok, why)
	}
	h.add(store.Telemetry, 5)
	h.drained(20 * time.Second)
}

// bbolt panics inside a commit (injected), or meets pages overwritten
// under the running store (real): no panic escapes, the file is moved
// aside and salvaged, a buffer_reset event says so, and the stream goes
// on in the next epoch with the next seq.
func casePanic(t *testing.T, h *harness) {
	h.add(store.Telemetry, 2000)
	h.drained(30 * time.Second)
	backlog := h.add(store.Telemetry, 2000) // a backlog in the file
	h.c.mayLose(store.Telemetry, backlog[len(backlog)-1])
	if h.kind.inject {
		h.f.set(func(f *faults) { f.panicNext = true })
		h.add(store.Telemetry, 1)
	} else {
		h.c.pause(true)
		time.Sleep(200 * time.Millisecond)
		overwriteLeaves(t, h.path)
		h.c.pause(false)
	}
	h.drained(30 * time.Second)
	if len(h.c.resets) != 1 || h.q.Epoch() != 2 {
		t.Fatalf("resets %+v, epoch %d; want one reset, epoch 2", h.c.resets, h.q.Epoch())
	}
	h.add(store.Telemetry, 10)
	h.drained(20 * time.Second)
	t.Logf("reset: %+v", h.q.Reset())
}

// overwriteLeaves writes garbage over a few leaf pages in the middle of
// the file while the store has it open.
func overwriteLeaves(t *testing.T, path string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fi, _ := fh.Stat()
	pages := fi.Size() / 4096
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	// The page header's overflow count (bytes 12..15) stays 0: with the
	// pattern's 0x6C655E57 there, bbolt's freelist took the page for 1.8
	// billion pages when a commit freed it and the test process grew to
	// 24 GB until the OOM killer ended it (a known limit: bbolt trusts a
	// page header it reads, and this damage comes under the running store,
	// after the open check; noted in issue 10). Everything else is junk.
	junk[12], junk[13], junk[14], junk[15] = 0, 0, 0, 0
	for p := pages / 3; p < pages/3+pages/10+2; p++ {
		if _, err := fh.WriteAt(junk, p*4096); err != nil {
			t.Fatal(err)
		}
	}
}

// The wall clock steps a year forward (a board without RTC that booted
// at 1970 gets NTP) and two back: nothing is evicted as too old, nothing
// is lost, seq and rec go on.
func caseClockStep(t *testing.T, h *harness) {
	h.add(store.Telemetry, 10)
	h.add(store.Alarm, 1)
	h.f.set(func(f *faults) { f.clock = 365 * 24 * time.Hour })
	h.add(store.Telemetry, 10)
	h.f.set(func(f *faults) { f.clock = -365 * 24 * time.Hour })
	h.add(store.Telemetry, 10)
	h.add(store.Event, 1)
	h.drained(20 * time.Second)
	if len(h.c.losses) > 0 {
		t.Fatalf("a clock step lost records: %+v", h.c.losses)
	}
}

// The file is found damaged at the next start: a fresh one, epoch 2, and
// the first message has the next seq and the next rec, not a jump or a
// step back.
func caseReset(t *testing.T, h *harness) {
	h.add(store.Telemetry, 30)
	h.add(store.Alarm, 2)
	h.drained(20 * time.Second)
	lastSeq, lastRec := h.c.lastSeq(store.Telemetry), h.c.maxRec(store.Telemetry)
	h.close()
	if err := os.WriteFile(h.path, []byte(strings.Repeat("garbage page ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	h.open()
	h.add(store.Telemetry, 5)
	h.drained(20 * time.Second)
	first := h.c.firstAfter(store.Telemetry, lastSeq)
	if first.seq != lastSeq+1 || first.rec != lastRec+1 || first.epoch != 2 {
		t.Fatalf("first telemetry after the reset: %+v; want seq %d rec %d epoch 2", first, lastSeq+1, lastRec+1)
	}
	if len(h.c.resets) != 1 {
		t.Fatalf("buffer_reset events %+v, want one", h.c.resets)
	}
}
