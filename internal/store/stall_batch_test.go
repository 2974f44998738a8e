package store

import (
	"path/filepath"
	"sync/atomic"
	"testing"
)

// stallGate holds the writer in BeforeCommit while armed, until opened.
type stallGate struct {
	armed   atomic.Bool
	release chan struct{}
	entered chan struct{}
}

func newStallGate() *stallGate {
	return &stallGate{release: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (g *stallGate) before() {
	if g.armed.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
}

func (g *stallGate) open() {
	if g.armed.CompareAndSwap(true, false) {
		close(g.release)
	}
}

// A message formed from memory while the disk stalls may carry more
// records than the next round's MaxBatch: that round takes them all with
// the message. Left queued, the rest were put into the file after the
// message was written and formed again into a second message, so the same
// readings went out under two seqs without any crash.
func TestStall_AMessageLargerThanMaxBatchIsNotFormedTwice(t *testing.T) {
	g := newStallGate()
	s := open(t, filepath.Join(t.TempDir(), "buffer.db"), Options{MaxBatch: 4, BeforeCommit: g.before})
	t.Cleanup(g.open)
	g.armed.Store(true)
	appendAsync(t, s, Telemetry, 0, 1)
	<-g.entered // the round holding rec 1 stalls
	appendAsync(t, s, Telemetry, 1, 10)
	m1, ok, err := s.Form(Telemetry, 100, 0, joinBuild) // from memory, after StallAfter
	if err != nil || !ok || m1.Last-m1.First+1 <= 4 {
		t.Fatalf("Form during the stall: %+v ok %v err %v; want a message of more than MaxBatch records", m1, ok, err)
	}
	g.open()
	waitUntil(t, "everything written", func() bool { return !s.hasWork() })
	if m2, ok, err := s.Form(Telemetry, 100, 0, joinBuild); err != nil || ok {
		t.Fatalf("records %d..%d formed again in seq %d, already carried by seq %d (%d..%d); err %v",
			m2.First, m2.Last, m2.Seq, m1.Seq, m1.First, m1.Last, err)
	}
	if st, _ := s.Stats(); st.Streams[Telemetry].Pending != 0 || st.Streams[Telemetry].Outbox != 1 {
		t.Fatalf("telemetry after the stall: %+v; want nothing pending and the one message", st.Streams[Telemetry])
	}
}
