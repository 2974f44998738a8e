package store

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Close with the disk full (every commit fails with ENOSPC) tries the
// file once more and returns, failing what memory held, instead of
// retrying forever: the agent's shutdown must not hang on a full disk.
func TestStore_CloseWithDiskFullReturns(t *testing.T) {
	var full atomic.Bool
	s := open(t, filepath.Join(t.TempDir(), "buffer.db"), Options{RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Fault: func(op string) error {
			if op == "commit" && full.Load() {
				return fmt.Errorf("write: %w", syscall.ENOSPC)
			}
			return nil
		}})
	appendN(t, s, Telemetry, 0, 5)
	full.Store(true)
	var failed atomic.Int64
	for i := range 20 {
		if err := s.AppendAsync(Telemetry, t0, []byte(fmt.Sprint(i)), func(err error) {
			if err != nil {
				failed.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if ok, why := s.Health(); ok {
		t.Fatalf("healthy with the disk full: %q", why)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return with the disk full")
	}
	if failed.Load() != 20 {
		t.Fatalf("%d of the 20 records held in memory reported failed at Close", failed.Load())
	}
}
