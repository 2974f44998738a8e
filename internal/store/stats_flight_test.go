package store

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// The records a round has taken are counted while their commit is under
// way (they were left out: neither in the file read nor in memory, and the
// depth dipped at each commit).
func TestStats_RecordsOfACommitUnderWayAreCounted(t *testing.T) {
	var s atomic.Pointer[Store]
	var during atomic.Int64
	during.Store(-1)
	st, err := Open(filepath.Join(t.TempDir(), "b.db"), Options{CommitInterval: 50 * time.Millisecond,
		BeforeCommit: func() {
			if s := s.Load(); s != nil && during.Load() < 0 {
				if stats, err := s.Stats(); err == nil {
					p, _ := stats.Depth()
					during.Store(int64(p))
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 5
	for i := range n {
		if err := st.AppendAsync(Telemetry, time.UnixMilli(int64(1000+i)), []byte(`{}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	s.Store(st)
	if err := st.Append(context.Background(), Telemetry, time.UnixMilli(2000), []byte(`{}`)); err != nil {
		t.Fatal(err) // returns once committed
	}
	if got := during.Load(); got != n && got != n+1 {
		t.Fatalf("pending during the commit = %d, want %d (or %d)", got, n, n+1)
	}
	stats, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := stats.Depth(); p != n+1 {
		t.Fatalf("pending after the commit = %d, want %d", p, n+1)
	}
}
