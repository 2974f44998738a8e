package store

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Records formed into messages within their own commit window are not
// written to the items bucket (only to be deleted by the same commit): the
// outbox record carries them. The bucket's sequence still counts them, and
// the file's counters agree with a recount after a restart.
func TestCommit_RecordsFormedInTheirOwnWindowGoOnlyToTheOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.db")
	s, clk, commits := openGroup(t, path)
	told := appendAsync(t, s, Telemetry, 0, 10)
	clk.waitTimer(t, testInterval)
	res := make(chan error, 1)
	go func() {
		_, _, err := s.Form(Telemetry, 4, 0, joinBuild)
		res <- err
	}()
	waitFormAtGate(t, s)
	clk.Advance(testInterval)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the records told durable", func() bool { return told.Load() == 10 })
	if commits.Load() != 1 {
		t.Fatalf("%d commits, want 1", commits.Load())
	}
	var items, outbox int
	var seq uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		ib := tx.Bucket(itemsBucket(Telemetry))
		items, seq = ib.Stats().KeyN, ib.Sequence()
		outbox = tx.Bucket(outboxBucket(Telemetry)).Stats().KeyN
		return nil
	})
	if items != 0 || outbox != 3 || seq != 10 {
		t.Fatalf("file: %d items, %d messages, items sequence %d; want 0, 3 and 10", items, outbox, seq)
	}
	before, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path, Options{})
	after, err := s2.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var kept, fresh counters
	_ = s2.db.View(func(tx *bolt.Tx) error {
		kept = loadCounters(tx.Bucket(bucketMeta))
		fresh = recount(tx, kept)
		return nil
	})
	if kept.bytes != fresh.bytes || kept.items != fresh.items || kept.outbox != fresh.outbox || kept.outrec != fresh.outrec {
		t.Fatalf("the file's counters %+v disagree with a recount %+v", kept, fresh)
	}
	bp, bo := before.Depth()
	ap, ao := after.Depth()
	if bp != 0 || bo != 3 || ap != bp || ao != bo {
		t.Fatalf("depth (pending records/outbox messages) before the restart %d/%d, after %d/%d; want 0/3 both", bp, bo, ap, ao)
	}
	m, ok, err := s2.Form(Telemetry, 4, 0, joinBuild)
	if err != nil || ok {
		t.Fatalf("a record carried by a written message was formed again: %+v ok %v err %v", m, ok, err)
	}
	appendN(t, s2, Telemetry, 10, 1)
	if m, _, _ := s2.Form(Telemetry, 4, 0, joinBuild); m.First != 11 {
		t.Fatalf("the next record after the restart is rec %d, want 11", m.First)
	}
}
