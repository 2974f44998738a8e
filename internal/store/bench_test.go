package store

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var benchItem = []byte(`{"sensor":"CH4-101","type":"methane","ts":1700000000000,"value":0.52,"unit":"%CH4","status":"normal"}`)

// BenchmarkAppend_GroupCommit: 32 concurrent producers (as many sensors
// polled at once) share fsyncs through the group-commit writer.
func BenchmarkAppend_GroupCommit(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "b.db"), Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	per := b.N/32 + 1
	b.ResetTimer()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := s.Append(context.Background(), Telemetry, time.Now(), benchItem); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*32)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkAppend_TxPerItem is the naive baseline: one bbolt transaction
// (one fsync) per record.
func BenchmarkAppend_TxPerItem(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "b.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("items")); return err })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte("items"))
			id, _ := bk.NextSequence()
			v := make([]byte, 8+len(benchItem))
			binary.BigEndian.PutUint64(v, uint64(time.Now().UnixMilli()))
			copy(v[8:], benchItem)
			return bk.Put(u64key(id), v)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}
