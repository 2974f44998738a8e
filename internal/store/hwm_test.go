package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hazmon/hazmon/internal/statefile"
)

// readMark reads the high-water mark beside the buffer file at path.
func readMark(t *testing.T, path string) hwmState {
	t.Helper()
	var st hwmState
	if err := statefile.Read(path+hwmSuffix, &st); err != nil {
		t.Fatalf("read the high-water mark: %v", err)
	}
	return st
}

// formOneMsg appends one telemetry record and forms it into a message.
func formOneMsg(t *testing.T, s *Store, i int) Message {
	t.Helper()
	appendN(t, s, Telemetry, i, 1)
	m, ok, err := s.Form(Telemetry, 1, 0, joinBuild)
	if err != nil || !ok {
		t.Fatalf("Form %d: ok %v err %v", i, ok, err)
	}
	return m
}

// crashCopy copies the buffer file and its mark as a power cut would
// leave them (the store is not closed) and returns the copy's path.
func crashCopy(t *testing.T, path string) string {
	t.Helper()
	crashed := filepath.Join(filepath.Dir(path), "crashed.db")
	for _, suffix := range []string{"", hwmSuffix} {
		b, err := os.ReadFile(path + suffix)
		if err == nil {
			err = os.WriteFile(crashed+suffix, b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return crashed
}

// The running store writes its mark with a reserve above the numbers it
// hands out and writes it again only once a counter passes that reserve:
// not at every commit that forms messages (two fsyncs each).
func TestHWM_WrittenAgainOnlyWhenAReserveIsPassed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := open(t, path, Options{NoSync: true})
	formOneMsg(t, s, 0)
	first := readMark(t, path)
	tm := first.Streams[string(Telemetry)]
	if !first.Reserve || tm.Seq != 1+hwmSeqReserve || tm.Rec != 1+hwmRecReserve {
		t.Fatalf("mark after the first message: %+v; want a reserve: seq %d rec %d", first, 1+hwmSeqReserve, 1+hwmRecReserve)
	}
	fi, err := os.Stat(path + hwmSuffix)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < hwmSeqReserve; i++ { // seqs 2..1024: all below the reserve (1025)
		formOneMsg(t, s, i)
	}
	if fi2, err := os.Stat(path + hwmSuffix); err != nil || !os.SameFile(fi, fi2) {
		t.Fatalf("the mark was written again below its reserve (%v): %+v", err, readMark(t, path))
	}
	formOneMsg(t, s, hwmSeqReserve)        // seq 1025: still covered
	m := formOneMsg(t, s, hwmSeqReserve+1) // seq 1026 passes it
	if m.Seq != hwmSeqReserve+2 {
		t.Fatalf("seq %d, want %d", m.Seq, hwmSeqReserve+2)
	}
	if got := readMark(t, path).Streams[string(Telemetry)].Seq; got != m.Seq+hwmSeqReserve {
		t.Fatalf("mark after seq %d passed the reserve: seq %d, want %d", m.Seq, got, m.Seq+hwmSeqReserve)
	}
}

// A clean stop writes the exact mark: a file found damaged at the next
// start goes on with the next seq and rec, as if nothing were reserved.
func TestHWM_CleanStopWritesTheExactMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := open(t, path, Options{})
	m := formOneMsg(t, s, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := readMark(t, path)
	if st.Reserve || st.Streams[string(Telemetry)] != (hwmStream{Seq: m.Seq, Rec: m.Last}) {
		t.Fatalf("mark after Close: %+v; want exactly seq %d rec %d", st, m.Seq, m.Last)
	}
}

// After a power cut the mark holds the reserve, so a file found damaged
// at the next start goes on above it: the numbers in between were never
// used; none is used twice and seq does not go back.
func TestHWM_CrashThenDamagedFileGoesOnAboveTheReserve(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := open(t, path, Options{})
	var last Message
	for i := range 3 {
		last = formOneMsg(t, s, i)
	}
	crashed := crashCopy(t, path)
	mark := readMark(t, crashed).Streams[string(Telemetry)]
	if mark.Seq < last.Seq || mark.Rec < last.Last {
		t.Fatalf("the mark %+v is below the last message (seq %d rec %d)", mark, last.Seq, last.Last)
	}
	if err := os.WriteFile(crashed, []byte("not a bbolt file, "+string(make([]byte, 8192))), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, crashed, Options{})
	if s2.Reset() == nil || s2.Epoch() != 2 {
		t.Fatalf("reset %+v epoch %d; want a reset into epoch 2", s2.Reset(), s2.Epoch())
	}
	m := formOneMsg(t, s2, 3)
	if m.Seq != mark.Seq+1 || m.First != mark.Rec+1 {
		t.Fatalf("first message after the crash and reset: seq %d rec %d; want seq %d rec %d (above the reserve)",
			m.Seq, m.First, mark.Seq+1, mark.Rec+1)
	}
}

// After a power cut with the file intact the next start also goes on
// above the reserve: a message may have been published from memory
// (a stalled disk) with numbers the file never got.
func TestHWM_CrashWithAnIntactFileNeverReusesANumber(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := open(t, path, Options{})
	last := formOneMsg(t, s, 0)
	s2 := open(t, crashCopy(t, path), Options{})
	m := formOneMsg(t, s2, 1)
	if m.Seq <= last.Seq || m.First <= last.Last || m.Seq > last.Seq+hwmSeqReserve+1 {
		t.Fatalf("after the crash: seq %d rec %d; want above seq %d rec %d, at most the reserve above", m.Seq, m.First, last.Seq, last.Last)
	}
}

// A read-only inspection (the CLI) of a crashed agent's buffer does not
// lower the reserve the agent saved: Close of a read-only store writes
// no mark.
func TestHWM_ReadOnlyCloseLeavesTheMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := open(t, path, Options{})
	formOneMsg(t, s, 0)
	crashed := crashCopy(t, path)
	before := readMark(t, crashed)
	ro, err := OpenReadOnly(crashed, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after := readMark(t, crashed); !sameStreams(after.Streams, before.Streams) || after.Reserve != before.Reserve {
		t.Fatalf("a read-only Close changed the mark: %+v → %+v", before, after)
	}
}

// A stream that has handed out no number gets no reserve: after a crash
// it skips nothing (alarms, rare, start at seq 1 and rec 1).
func TestHWM_AnUnusedStreamReservesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s := open(t, path, Options{})
	formOneMsg(t, s, 0)
	if al := readMark(t, path).Streams[string(Alarm)]; al != (hwmStream{}) {
		t.Fatalf("the alarm stream's mark %+v, want zero: it handed out nothing", al)
	}
}
