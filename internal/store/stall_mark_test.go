package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// queueN queues records without waiting for the disk (the store is not
// closed by these tests before their crash copy: no callback).
func queueN(t *testing.T, s *Store, st Stream, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if err := s.AppendAsync(st, t0.Add(time.Duration(i)*time.Millisecond), []byte(fmt.Sprintf(`{"n":%d}`, i)), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// published forms messages of stream until none is pending and returns
// the highest seq and rec they carry.
func publishAll(t *testing.T, s *Store, stream Stream, maxItems int) (seq, rec uint64) {
	t.Helper()
	for {
		m, ok, err := s.Form(stream, maxItems, 0, joinBuild)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return seq, rec
		}
		seq, rec = max(seq, m.Seq), max(rec, m.Last)
	}
}

// afterCrash opens a copy of the buffer as a power cut leaves it and
// returns the first seq and rec the next start hands out.
func afterCrash(t *testing.T, path string) (seq, rec uint64) {
	t.Helper()
	s := open(t, crashCopy(t, path), Options{NoSync: true})
	m := formOneMsg(t, s, 1<<30)
	return m.Seq, m.First
}

// openInMemoryMode opens the store at path, forms one message (the mark
// is saved), then makes every commit fail (retried only after an hour):
// the store runs in memory.
func openInMemoryMode(t *testing.T, path string) *Store {
	t.Helper()
	var fail atomic.Bool
	s := open(t, path, Options{NoSync: true, RetryMin: time.Hour, RetryMax: time.Hour, Fault: func(op string) error {
		if op == "commit" && fail.Load() {
			return errors.New("injected EIO")
		}
		return nil
	}})
	formOneMsg(t, s, 0)
	fail.Store(true)
	queueN(t, s, Telemetry, 1, 1)
	waitUntil(t, "memory mode", func() bool { return !s.fileOpen() })
	return s
}

// While a commit stalls the writer cannot save the high-water mark, yet
// Form goes on publishing from memory: past the mark's reserve the
// marker saves it, so after a crash the next start never hands out a seq
// or rec a consumer has already seen (it did before: seq 1026 and rec
// 65538 were used twice).
func TestStall_NumbersPublishedFromMemoryAreCoveredByTheMarkBeforeACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	g := newStallGate()
	s := open(t, path, Options{NoSync: true, BeforeCommit: g.before})
	t.Cleanup(g.open)
	formOneMsg(t, s, 0) // the mark: seq 1+1024, rec 1+65536
	g.armed.Store(true)
	queueN(t, s, Telemetry, 1, 1)
	<-g.entered // that round stalls, and every round after it waits
	var seq uint64
	for i := 0; i < hwmSeqReserve+10; i++ {
		queueN(t, s, Telemetry, 2+i, 1)
		m, ok, err := s.Form(Telemetry, 1, 0, joinBuild)
		if err != nil || !ok {
			t.Fatalf("Form %d during the stall: ok %v err %v", i, ok, err)
		}
		seq = m.Seq
	}
	queueN(t, s, Telemetry, 5000, hwmRecReserve+10)
	_, rec := publishAll(t, s, Telemetry, 10000)
	if st := readMark(t, path).Streams[string(Telemetry)]; st.Seq < seq || st.Rec < rec {
		t.Fatalf("mark on disk %+v does not cover seq %d and rec %d published from memory", st, seq, rec)
	}
	if nseq, nrec := afterCrash(t, path); nseq <= seq || nrec <= rec {
		t.Fatalf("after the crash seq %d rec %d handed out again (published from memory up to seq %d rec %d)", nseq, nrec, seq, rec)
	}
}

// In memory mode (the file cannot be written) the mark is saved by the
// marker as soon as a message would pass it, not only at the writer's
// retries of the file.
func TestMemoryMode_NumbersPublishedPastTheReserveAreCoveredBeforeACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := openInMemoryMode(t, path)
	var seq uint64
	for i := 0; i < hwmSeqReserve+10; i++ {
		queueN(t, s, Telemetry, 2+i, 1)
		m, ok, err := s.Form(Telemetry, 1, 0, joinBuild)
		if err != nil || !ok {
			t.Fatalf("Form %d in memory mode: ok %v err %v", i, ok, err)
		}
		seq = m.Seq
	}
	if nseq, _ := afterCrash(t, path); nseq <= seq {
		t.Fatalf("after the crash seq %d handed out again (published from memory up to %d)", nseq, seq)
	}
}

// A mark that cannot be saved does not hold live data back: messages are
// still published from memory during the stall (as before the marker),
// and Health says the mark is not saved once the stall (which it
// reports first) is over.
func TestStall_AnUnsavableMarkDoesNotHoldBackPublishing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	g := newStallGate()
	s := open(t, path, Options{NoSync: true, BeforeCommit: g.before})
	t.Cleanup(g.open)
	formOneMsg(t, s, 0)
	// A folder with an entry in the mark's place: its file cannot be
	// replaced any more.
	if err := os.Remove(path + hwmSuffix); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path+hwmSuffix, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	g.armed.Store(true)
	queueN(t, s, Telemetry, 1, 1)
	<-g.entered
	for i := 0; i < hwmSeqReserve+10; i++ {
		queueN(t, s, Telemetry, 2+i, 1)
		if _, ok, err := s.Form(Telemetry, 1, 0, joinBuild); err != nil || !ok {
			t.Fatalf("Form %d during the stall with an unsavable mark: ok %v err %v", i, ok, err)
		}
	}
	g.open()
	waitUntil(t, "the stall over and everything written", func() bool { return !s.stalled() && !s.hasWork() })
	if ok, why := s.Health(); ok || !strings.Contains(why, "high-water mark") {
		t.Fatalf("Health after the stall: %v %q; want the unsaved mark reported", ok, why)
	}
}

// pubNext is the publisher's next() (internal/publish/stream.go) for one
// stream: the outbox after the last seq sent, else a new message.
func pubNext(t *testing.T, s *Store, st Stream, sent uint64) (Message, bool) {
	t.Helper()
	out, err := s.Outbox(st, sent, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 0 {
		return out[0], true
	}
	m, ok, err := s.Form(st, 1, 0, joinBuild)
	if err != nil {
		t.Fatal(err)
	}
	return m, ok
}

// Messages formed ahead (CommitInterval) just after a round took its
// snapshot and saved the mark, then that round stalls: those past the
// mark's reserve are not yet covered. Outbox waits for the mark rather
// than offer nothing; when it offered nothing, the publisher's Form sent
// a later seq and the held ones were skipped (seq 1084 after 1025).
func TestStall_ThePublisherSendsEverySeqInOrderPastTheReserve(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	g := newStallGate()
	s := open(t, path, Options{NoSync: true, CommitInterval: 20 * time.Millisecond, BeforeCommit: g.before})
	t.Cleanup(g.open)
	formOneMsg(t, s, 0) // the mark: seq 1+1024
	queueN(t, s, Telemetry, 1, 1018)
	sent, _ := publishAll(t, s, Telemetry, 1)
	waitUntil(t, "everything written", func() bool { return !s.hasWork() })
	g.armed.Store(true)
	queueN(t, s, Telemetry, 5000, 100)
	<-g.entered
	for n := 0; n < 80; n++ {
		m, ok := pubNext(t, s, Telemetry, sent)
		if !ok {
			break
		}
		if m.Seq != sent+1 {
			t.Fatalf("publisher sent seq %d after %d: seqs %d..%d skipped", m.Seq, sent, sent+1, m.Seq-1)
		}
		sent = m.Seq
	}
	if sent <= 1+hwmSeqReserve {
		t.Fatalf("last seq sent %d: the test did not pass the reserve", sent)
	}
}

// A memory_full data_loss event published during a stall names telemetry
// recs shed from memory, past the telemetry mark: the mark must cover
// them before the event goes out (it covered only the event stream's own
// numbers, and after a crash telemetry rec 65538 was handed out again).
func TestStall_RecsADataLossEventNamesAreCoveredBeforeACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	g := newStallGate()
	s := open(t, path, Options{NoSync: true, QueueBytes: 256 << 10, BeforeCommit: g.before})
	t.Cleanup(g.open)
	formOneMsg(t, s, 0)
	appendN(t, s, Event, 0, 1)
	if _, ok, err := s.Form(Event, 1, 0, joinBuild); err != nil || !ok {
		t.Fatal(ok, err)
	}
	waitUntil(t, "everything written", func() bool { return !s.hasWork() })
	g.armed.Store(true)
	queueN(t, s, Telemetry, 1, 1)
	<-g.entered
	queueN(t, s, Telemetry, 2, hwmRecReserve+5000) // past QueueBytes: shed, named by data_loss events
	var named uint64
	for {
		m, ok, err := s.Form(Event, 1, 0, joinBuild)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		var e struct {
			Stream string   `json:"stream"`
			Rec    []uint64 `json:"rec"`
		}
		body := m.Payload[strings.IndexByte(string(m.Payload), ':')+1:]
		if json.Unmarshal(body, &e) == nil && e.Stream == string(Telemetry) && len(e.Rec) == 2 {
			named = max(named, e.Rec[1])
		}
	}
	if named <= 1+hwmRecReserve {
		t.Fatalf("data_loss events named telemetry recs up to %d: the test did not pass the reserve", named)
	}
	if _, nrec := afterCrash(t, path); nrec <= named {
		t.Fatalf("after the crash telemetry rec %d handed out again: a published data_loss named recs up to %d", nrec, named)
	}
}

// A reset of a damaged file computes its mark before it salvages; the
// publisher meanwhile sends (and gets PUBACKs for) messages from memory
// under the old epoch's reserve. The reset's mark must not lower the
// saved one below them (it did: after a crash seq 2 was used again).
func TestReset_TheNewEpochsMarkNeverLowersANumber(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	var hold atomic.Bool
	entered, release := make(chan struct{}, 1), make(chan struct{})
	g := newStallGate()
	s := open(t, path, Options{NoSync: true, BeforeCommit: g.before, Fault: func(op string) error {
		if op == "open" && hold.CompareAndSwap(true, false) {
			entered <- struct{}{}
			<-release
		}
		return nil
	}})
	t.Cleanup(g.open)
	formOneMsg(t, s, 0)
	hold.Store(true)
	s.noteDamage(s.currentDB(), errors.Join(errDamaged, errors.New("injected damage")))
	<-entered // the writer is in replaceDamaged, its mark computed, before the salvage
	var top uint64
	for i := 0; i < 5; i++ {
		queueN(t, s, Telemetry, 100+i, 1)
		m, ok, err := s.Form(Telemetry, 1, 0, joinBuild)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		top = m.Seq
		if err := s.Ack(Telemetry, m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	g.armed.Store(true)
	close(release)
	<-g.entered // the round after the reset (its buffer_reset event) stalls: no save of its own
	if mk := readMark(t, path); mk.Epoch != 2 {
		t.Fatalf("mark after the reset: %+v; want epoch 2", mk)
	}
	if nseq, _ := afterCrash(t, path); nseq <= top {
		t.Fatalf("after the crash seq %d handed out again (sent up to %d during the salvage)", nseq, top)
	}
}

// A mark saved for a later epoch than the store's (a reset saved it, and
// the fresh file could not be attached) still covers: Form does not wait
// for a save the marker can never make (it spun for 1 s per message).
func TestMemoryMode_AMarkOfALaterEpochCoversWithoutWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := openInMemoryMode(t, path)
	s.hwm.mu.Lock()
	st := s.hwm.saved
	st.Epoch++ // as replaceDamaged's save leaves it when attach then fails
	s.hwm.saved = st
	s.hwm.cover.Store(&st)
	s.hwm.mu.Unlock()
	for i := 0; i < 3; i++ {
		queueN(t, s, Telemetry, 10+i, 1)
		start := time.Now()
		if _, ok, err := s.Form(Telemetry, 1, 0, joinBuild); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if d := time.Since(start); d >= StallAfter {
			t.Fatalf("Form %d waited %v for a mark of the later epoch", i, d)
		}
	}
}
