package publish

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

// With the buffer's commit window (200 ms, the default) and steady
// readings, every Form finds records waiting and waits for the window: a
// session's window fill must still end in time to serve PUBACKs, their
// timeouts and a stop. (It went on until 16 messages were in flight: the
// PUBACKs of the first ones were not taken, a 1 s PUBACK timeout fired on
// a live link, and a stop waited for the fill.)
func TestSession_SteadyReadingsInACommitWindowStillServePUBACKsAndStop(t *testing.T) {
	b := brokertest.Start(t)
	s, err := store.Open(filepath.Join(t.TempDir(), "buffer.db"), store.Options{Logger: quiet, CommitInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p, stop := startPublisher(t, s, Options{Brokers: []string{b.URL}, BatchMax: 1, PublishTimeout: time.Second, KeepAlive: 3 * time.Second})
	deadline := time.Now().Add(wait)
	for !p.Link().Connected {
		if time.Now().After(deadline) {
			t.Fatal("never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	base := time.Now()
	tick := time.NewTicker(50 * time.Millisecond) // 20 readings/s, ~4 per window
	defer tick.Stop()
	for i := 0; time.Since(base) < 4*time.Second; i++ {
		<-tick.C
		if err := s.AppendAsync(store.Telemetry, time.Now(), reading(i, time.Now()), nil); err != nil {
			t.Fatal(err)
		}
		if !p.Link().Connected {
			t.Fatalf("link dropped %v into steady readings on a live link: %s", time.Since(base).Round(time.Millisecond), p.Link().LastError)
		}
	}
	start := time.Now()
	stop()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("stop during steady readings took %v, want within 1 s (the PUBACKs come at once)", took)
	}
}
