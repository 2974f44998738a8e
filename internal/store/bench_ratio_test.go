package store

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// pahoBaseline measures, once per benchmark run, a bare paho QoS 1 publish
// loop (one reading per message, 16 in flight) against a local mosquitto:
// the readings/s the durable ingest is compared with.
var pahoBaseline = struct {
	once sync.Once
	rate float64
}{}

func baselineRate(b *testing.B) float64 {
	pahoBaseline.once.Do(func() {
		br := brokertest.Start(b)
		pahoBaseline.rate = br.PahoPublishRate(b, 5000, 16, benchItem)
		br.Stop()
	})
	return pahoBaseline.rate
}

// BenchmarkIngest_GroupCommit: durable ingest (fsynced, 32 producers sharing
// commits) in readings/s and as a ratio to the bare paho publish loop.
func BenchmarkIngest_GroupCommit(b *testing.B) {
	base := baselineRate(b)
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
	rate := float64(per*32) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "readings/s")
	b.ReportMetric(rate/base, "x_paho")
	b.ReportMetric(base, "paho_readings/s")
}

// BenchmarkIngest_TxPerReading: the same ingest with one bbolt
// transaction (one fsync) per reading, as a ratio to the paho loop.
func BenchmarkIngest_TxPerReading(b *testing.B) {
	base := baselineRate(b)
	db, err := bolt.Open(filepath.Join(b.TempDir(), "b.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("items")); return err }); err != nil {
		b.Fatal(err)
	}
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
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "readings/s")
	b.ReportMetric(rate/base, "x_paho")
	b.ReportMetric(base, "paho_readings/s")
}
