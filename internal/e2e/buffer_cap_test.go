package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/publish"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

// In process, with exact numbers: the buffer (30 kB cap) fills during an
// outage with 1000 readings and 5 alarms. The oldest telemetry is evicted,
// every alarm is kept, and the bureau gets exactly one data_loss event
// whose count and time range are exactly the readings that never arrive.
func TestBufferCap_EvictsOldestKeepsAlarms(t *testing.T) {
	b := brokertest.Start(t)
	rec := newRecorder(t, b, "bureau-cap", nil)
	b.Stop() // the outage
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.Open(filepath.Join(t.TempDir(), "buffer.db"), store.Options{MaxBytes: 30_000, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := publish.New(st, publish.Options{Brokers: []string{b.URL}, Site: site, Agent: gateID, Logger: quiet,
		ConnectTimeout: time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	ts := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	const n = 1000
	var alarmTS []int64
	for i := 0; i < n; i++ {
		v := float64(i)
		r, _ := contract.Marshal(contract.Reading{Sensor: "CH4-101", Type: "methane", TS: ts(i).UnixMilli(), Value: &v, Unit: "%CH4", Status: "normal"})
		if err := st.Append(ctx, store.Telemetry, ts(i), r); err != nil {
			t.Fatal(err)
		}
		if i%200 == 100 {
			lim := 1.5
			a, _ := contract.Marshal(contract.Alarm{AlarmID: fmt.Sprintf("CH4-101/cutoff/%d", ts(i).UnixMilli()), Sensor: "CH4-101",
				Level: "cutoff", State: "raised", TS: ts(i).UnixMilli(), Value: &v, Limit: &lim, Outputs: []string{"breaker-3"}})
			if err := st.Append(ctx, store.Alarm, ts(i), a); err != nil {
				t.Fatal(err)
			}
			alarmTS = append(alarmTS, ts(i).UnixMilli())
		}
	}
	stats, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	evicted := int(stats.Streams[store.Telemetry].Evicted)
	if evicted == 0 || stats.Streams[store.Alarm].Evicted != 0 {
		t.Fatalf("after the overflow: telemetry evicted %d, alarms evicted %d; want telemetry > 0, alarms 0", evicted, stats.Streams[store.Alarm].Evicted)
	}

	b.Start() // the link is back
	rec.until(t, "the surviving readings, the alarms and the data_loss event", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.readings) == n-evicted && len(rec.bySeq["alarm"]) == len(alarmTS) && len(rec.events) > 0
	})
	time.Sleep(time.Second) // a second event would show up now
	rec.check(t)
	loss := rec.eventsOf(contract.EventDataLoss)
	if len(loss) != 1 {
		t.Fatalf("got %d data_loss events, want exactly 1: %+v", len(loss), loss)
	}
	e := loss[0]
	want := contract.Event{Type: contract.EventDataLoss, FromTS: ts(0).UnixMilli(), ToTS: ts(evicted - 1).UnixMilli(),
		Readings: int64(evicted), Reason: store.ReasonBufferFull, Detail: fmt.Sprintf("telemetry=%d", evicted)}
	if e.FromTS != want.FromTS || e.ToTS != want.ToTS || e.Readings != want.Readings || e.Reason != want.Reason || e.Detail != want.Detail {
		t.Fatalf("data_loss = %+v\nwant       %+v", e, want)
	}
	got := rec.snapshot()
	for i := 0; i < n; i++ {
		_, ok := got[key{"CH4-101", ts(i).UnixMilli()}]
		if ok != (i >= evicted) {
			t.Fatalf("reading #%d (ts %d): received %v, but the oldest %d were evicted", i, ts(i).UnixMilli(), ok, evicted)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, seq := 0, uint64(1); i < len(alarmTS); i, seq = i+1, seq+1 {
		if !strings.Contains(string(rec.bySeq["alarm"][seq]), fmt.Sprintf(`"ts":%d`, alarmTS[i])) {
			t.Fatalf("alarm seq %d = %s, want ts %d", seq, rec.bySeq["alarm"][seq], alarmTS[i])
		}
	}
	t.Logf("cap 30000 B: %d of %d readings evicted (oldest first), %d alarms kept, event %+v", evicted, n, len(alarmTS), e)
}

// The agent process with a 1 MiB buffer, 10 sensors polled every 20 ms
// and the broker down until the buffer has overflowed. After the link is
// back the data_loss events count exactly the readings that never arrive:
// every read the slave served is accounted for one by one (its value was
// received, is left in the file, or its poll was reported as a fault
// reading), and the reads left over are as many as the events count, in
// their time ranges, and the oldest ones (nothing received lies inside an
// evicted range).
//
// The events: the first one covers the outage. While the backlog drains
// after the reconnect the buffer is still at its cap and new readings keep
// coming (500 a second), so on a loaded machine the oldest pending ones
// can be evicted again after that event has left; the store then reports
// them in a further event (it merges only into an event still waiting in
// the queue). Each event's counts are exact and the events do not overlap.
func TestBufferCap_AgentProcessOverflow(t *testing.T) {
	b := brokertest.Start(t)
	const sensors = 10
	s := startSite(t, sensors)
	rec := newRecorder(t, b, "bureau-cap-agent", s)
	dataDir := t.TempDir()
	cfg := agentConfig{Brokers: []string{b.URL}, DataDir: dataDir, SlaveAddr: s.addr, Sensors: sensors, Interval: "20ms",
		SensorName: "GAS-DETECTOR-WITH-A-LONG-TAG-FOR-THE-BUFFER-CAP", Unit: "normal-cubic-metres-per-hour-at-20C-101kPa",
		MaxBytes: 1 << 20, LogLevel: "debug"}.write(t)
	a := startAgent(t, cfg)
	rec.until(t, "live readings", func() bool { return len(rec.snapshot()) >= 50 })
	b.Stop()
	deadline := time.Now().Add(wait)
	for len(a.logLines("buffer evicted records")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the 1 MiB buffer did not overflow within %v", wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // keep overflowing for a while
	backAt := time.Now()
	b.Start()
	rec.until(t, "the data_loss event and readings sampled 2 s after the link came back", func() bool {
		if len(rec.eventsOf(contract.EventDataLoss)) == 0 {
			return false
		}
		for _, ts := range perSensor(rec.snapshot()) {
			if len(ts) == 0 || ts[len(ts)-1] < backAt.Add(2*time.Second).UnixMilli() {
				return false
			}
		}
		return true
	})
	a.term()
	rec.check(t)
	atExit := len(rec.snapshot())
	left := fileReadings(t, filepath.Join(dataDir, "buffer.db"))
	// What the agent had acked may still be on its way to the subscriber,
	// and so may a data_loss event.
	var l ledger
	var evicted int64
	eventually(func() bool {
		l, evicted = s.ledger(rec.snapshot(), left), lossCount(rec.eventsOf(contract.EventDataLoss))
		return int64(len(l.lost)) <= evicted
	})
	rec.check(t)
	loss := rec.eventsOf(contract.EventDataLoss)
	l, evicted = s.ledger(rec.snapshot(), left), lossCount(loss)
	if len(l.errs) > 0 {
		t.Fatalf("readings in the buffer file:\n%s", strings.Join(l.errs, "\n"))
	}
	t.Logf("served %d reads: %d delivered (%d of them reached the subscriber after the agent had exited), %d left in the file, %d reported as fault readings (%d fault readings in all); %d unaccounted; %d data_loss event(s) count %d: %+v",
		l.served, l.delivered, len(rec.snapshot())-atExit, l.inFile, l.timedOut, l.faults, len(l.lost), len(loss), evicted, loss)
	if len(loss) == 0 || evicted == 0 {
		t.Fatalf("no data_loss event counts the evicted readings")
	}
	// Exact unless the agent sampled fault readings: those may have been
	// evicted too, and an evicted fault has no read to show for it.
	exact := l.faults == 0 && !a.busTrouble()
	if n := int64(len(l.lost)); n > evicted || exact && n != evicted {
		t.Fatalf("%d reads served became readings that never arrived and are not in the file, but the data_loss events count %d (exact: %v)", n, evicted, exact)
	}
	var prevTo int64
	for i, e := range loss {
		if e.Readings <= 0 || e.FromTS > e.ToTS {
			t.Fatalf("data_loss #%d = %+v: no readings or an empty range", i, e)
		}
		if e.Reason != store.ReasonBufferFull {
			// Readings the buffer refused (queue full on a stalled disk,
			// write error) are counted too; they are the newest, not the
			// oldest, so the eviction order does not apply to them.
			if e.Reason != "buffer_busy" && e.Reason != "write_error" {
				t.Fatalf("data_loss #%d = %+v: unexpected reason", i, e)
			}
			t.Logf("data_loss #%d: the agent refused %d readings: %+v", i, e.Readings, e)
			continue
		}
		if e.Detail != fmt.Sprintf("telemetry=%d", e.Readings) {
			t.Fatalf("data_loss #%d = %+v, want buffer_full of telemetry only", i, e)
		}
		// Oldest first: each eviction took the oldest pending readings, so
		// a later event covers later readings (several sensors may share
		// the boundary millisecond), and nothing received lies inside an
		// evicted range.
		if e.FromTS < prevTo {
			t.Fatalf("data_loss #%d [%d, %d] starts before the previous one ends (%d)", i, e.FromTS, e.ToTS, prevTo)
		}
		prevTo = e.ToTS
		for k := range rec.snapshot() {
			if k.ts > e.FromTS && k.ts < e.ToTS {
				t.Fatalf("reading %v arrived although it lies in the evicted range [%d, %d]", k, e.FromTS, e.ToTS)
			}
		}
	}
	// Every read unaccounted for was sampled inside an evicted range.
	for _, q := range l.lost {
		at, _ := s.servedAt(q.unit, q.n)
		in := false
		for _, e := range loss {
			in = in || !at.Before(time.UnixMilli(e.FromTS)) && !at.After(time.UnixMilli(e.ToTS).Add(maxSampleLag))
		}
		if !in {
			t.Fatalf("read %d of unit %d (served %s) never arrived, is not in the file and lies in no data_loss range: %+v",
				q.n, q.unit, at.Format(time.StampMilli), loss)
		}
	}
}

// lossCount sums the readings counted by data_loss events.
func lossCount(es []contract.Event) int64 {
	var n int64
	for _, e := range es {
		n += e.Readings
	}
	return n
}
