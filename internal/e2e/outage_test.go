package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// The broker is stopped for 6 s and comes back: every reading sampled
// meanwhile arrives once, with its original ts, flagged historical, in
// seq order; nothing sampled is missing (the slave's request count equals
// the readings received plus what is left in the file after a clean stop).
func TestOutage_BrokerStoppedThenBack(t *testing.T) {
	b := brokertest.Start(t)
	s := startSite(t, 3)
	rec := newRecorder(t, b, "bureau-outage", s)
	dataDir := t.TempDir()
	cfg := agentConfig{Brokers: []string{b.URL}, DataDir: dataDir, SlaveAddr: s.addr, Sensors: 3, Interval: "100ms", BatchMax: 20}.write(t)
	a := startAgent(t, cfg)

	rec.until(t, "live readings", func() bool { return len(rec.snapshot()) >= 30 })
	stopAt := time.Now()
	b.Stop()
	time.Sleep(6 * time.Second)
	backAt := time.Now()
	b.Start()
	rec.until(t, "readings sampled 3 s after the broker came back", func() bool {
		for _, ts := range perSensor(rec.snapshot()) {
			if len(ts) == 0 || ts[len(ts)-1] < backAt.Add(3*time.Second).UnixMilli() {
				return false
			}
		}
		return true
	})
	a.term()
	rec.check(t)

	left := fileReadings(t, filepath.Join(dataDir, "buffer.db"))
	served := s.requests()
	// What the agent had acked may still be on its way to the subscriber.
	rec.until(t, "every acked reading at the subscriber", func() bool { return len(rec.snapshot())+len(left) >= served-3 })
	time.Sleep(500 * time.Millisecond)
	got := rec.snapshot()
	for k := range left {
		if _, ok := got[k]; ok {
			t.Errorf("reading %v is both delivered and still in the buffer after a clean stop", k)
		}
	}
	// Every read the slave served became a reading that is now either at
	// the subscriber or in the file; SIGTERM may cut one read per sensor
	// after the slave answered.
	if n := len(got) + len(left); n > served || n < served-3 {
		t.Fatalf("slave served %d reads; subscriber has %d readings and the file %d: %d missing", served, len(got), len(left), served-n)
	}
	// The outage window: readings sampled while the broker was down are
	// there (10/s per sensor), flagged historical, with the ts they were
	// sampled at (the recorder checked each value against the slave clock).
	during := 0
	for k, g := range got {
		if k.ts > stopAt.Add(500*time.Millisecond).UnixMilli() && k.ts < backAt.UnixMilli() {
			during++
			if !g.historical {
				t.Errorf("reading %v sampled during the outage arrived in seq %d without historical:true", k, g.seq)
			}
		}
	}
	if want := 3 * 10 * 5; during < want*8/10 {
		t.Fatalf("only %d readings sampled during the outage arrived, want about %d", during, want)
	}
	for sensor, ts := range perSensor(got) {
		for i := 1; i < len(ts); i++ {
			if gap := time.Duration(ts[i]-ts[i-1]) * time.Millisecond; gap > 2*time.Second {
				t.Errorf("%s: %v without a reading between %d and %d", sensor, gap, ts[i-1], ts[i])
			}
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	t.Logf("outage %v: %d readings (%d sampled during the outage), %d messages, %d exact repeats, served %d, left in file %d, statuses %v",
		backAt.Sub(stopAt).Round(time.Millisecond), len(got), during, rec.msgs, rec.repeats, served, len(left), fmt.Sprint(rec.statuses))
}
