package publish

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

// BenchmarkDrain: a backlog of b.N readings (durable buffer, real fsyncs
// on Form and Ack) drained to a local mosquitto with the default batching
// and window, in readings/s PUBACKed, and as a ratio to a bare paho QoS 1
// loop publishing one reading per message, measured in the same run.
func BenchmarkDrain(b *testing.B) {
	br := brokertest.Start(b)
	item := reading(1, time.Now())
	base := br.PahoPublishRate(b, 5000, DefaultWindow, item)
	s, err := store.Open(filepath.Join(b.TempDir(), "buffer.db"), store.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for i := 0; i < b.N; i++ {
		if err := s.AppendAsync(store.Telemetry, now, item, nil); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 { // let the writer keep up with the queue
			if err := s.Append(context.Background(), store.Telemetry, now, item); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Append(context.Background(), store.Telemetry, now, item); err != nil {
		b.Fatal(err)
	}
	p, err := New(s, Options{Brokers: []string{br.URL}, Site: "bench", Agent: "gw", Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.ResetTimer()
	go func() { defer close(done); p.Run(ctx) }()
	for {
		st, err := s.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if pend, out := st.Depth(); pend+out == 0 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "readings/s")
	b.ReportMetric(rate/base, "x_paho")
	b.ReportMetric(base, "paho_readings/s")
}
