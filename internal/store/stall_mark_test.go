package store

import (
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

// Outbox offers a message not yet written only once the mark covers it,
// and none after it before (the publisher sends in seq order).
func TestOutbox_UnwrittenMessagesWaitForTheMark(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "buffer.db"), Options{NoSync: true})
	formOneMsg(t, s, 0)
	s.mu.Lock()
	l := s.lanes[Telemetry]
	base := l.nextSeq
	for i := uint64(0); i < 3; i++ {
		l.unwritten = append(l.unwritten, &formed{msg: Message{Stream: Telemetry, Seq: base + i, First: 100 + i, Last: 100 + i},
			done: make(chan struct{}), inFlight: true})
	}
	s.mu.Unlock()
	seqs := func() (out []uint64) {
		ms, err := s.Outbox(Telemetry, base-1, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			out = append(out, m.Seq)
		}
		return out
	}
	cover := func(seq uint64) {
		st := hwmState{Epoch: s.Epoch(), Streams: map[string]hwmStream{string(Telemetry): {Seq: seq, Rec: 1 << 20}}}
		s.hwm.cover.Store(&st)
	}
	cover(base)
	if got := seqs(); len(got) != 1 || got[0] != base {
		t.Fatalf("mark covers seq %d: Outbox offers %v; want only %d", base, got, base)
	}
	cover(base + 2)
	if got := seqs(); len(got) != 3 {
		t.Fatalf("mark covers all three: Outbox offers %v", got)
	}
	s.mu.Lock()
	l.unwritten = l.unwritten[:0] // the test's messages never reach the writer
	s.mu.Unlock()
}
