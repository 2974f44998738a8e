package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 10 item 8: live data is never refused because history drains. A
// backlog of 200 000 readings drains (Form 200 + Ack, as the publisher
// does) while live readings arrive at 5 000/s, fsync on: no live reading
// is refused or dropped, none waits in AppendAsync, each is written
// within a bound, and the drain goes on meanwhile.
func TestStore_DrainYieldsToLiveIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("a 200 000-reading backlog")
	}
	const backlog, rate, liveFor = 200_000, 5000, 4 * time.Second
	s := open(t, filepath.Join(t.TempDir(), "buffer.db"), Options{})
	pad := strings.Repeat("x", 100)
	for i := range backlog {
		if err := s.AppendAsync(Telemetry, t0, []byte(fmt.Sprintf(`{"old":%d,"pad":%q}`, i, pad)), nil); err != nil {
			t.Fatal(err)
		}
	}
	appendN(t, s, Alarm, 0, 1) // everything before is written
	var drained atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, ok, err := s.Form(Telemetry, 200, 64<<10, joinBuild)
			if err != nil || !ok {
				time.Sleep(time.Millisecond)
				continue
			}
			_ = s.Ack(Telemetry, m.Seq)
			drained.Add(int64(m.Items))
		}
	}()
	var written, dropped atomic.Int64
	var worstAppend, worstWrite time.Duration
	var worstMu atomicDur
	tk := time.NewTicker(time.Second / 100) // 50 readings every 10 ms
	start := time.Now()
	live := 0
	for time.Since(start) < liveFor {
		<-tk.C
		for range rate / 100 {
			at := time.Now()
			err := s.AppendAsync(Telemetry, at, []byte(fmt.Sprintf(`{"live":%d,"pad":%q}`, live, pad)), func(err error) {
				if err != nil {
					dropped.Add(1)
					return
				}
				written.Add(1)
				worstMu.max(time.Since(at))
			})
			worstAppend = max(worstAppend, time.Since(at))
			if err != nil {
				t.Fatalf("live reading %d refused while the backlog drains: %v", live, err)
			}
			live++
		}
	}
	tk.Stop()
	drainedLive := drained.Load()
	deadline := time.Now().Add(30 * time.Second)
	for written.Load()+dropped.Load() < int64(live) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-done
	worstWrite = worstMu.get()
	st, _ := s.Stats()
	if d := dropped.Load(); d > 0 || written.Load() != int64(live) {
		t.Fatalf("%d of %d live readings written, %d dropped from memory", written.Load(), live, d)
	}
	if worstAppend > 250*time.Millisecond { // generous: 2 shared cores; never a commit's wait
		t.Fatalf("an append waited %v", worstAppend)
	}
	if worstWrite > 5*time.Second {
		t.Fatalf("a live reading took %v to be written", worstWrite)
	}
	if drainedLive == 0 {
		t.Fatal("the backlog did not drain while live data came in")
	}
	t.Logf("live %d readings in %v (%d/s): all written, slowest append %v, slowest write %v; the drain formed and acked %d readings meanwhile, backlog and live (%.0f/s); memory now %d bytes",
		live, liveFor, rate, worstAppend.Round(time.Microsecond), worstWrite.Round(time.Millisecond), drainedLive,
		float64(drainedLive)/liveFor.Seconds(), st.MemoryBytes)
}

type atomicDur struct{ v atomic.Int64 }

func (a *atomicDur) max(d time.Duration) {
	for {
		old := a.v.Load()
		if int64(d) <= old || a.v.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func (a *atomicDur) get() time.Duration { return time.Duration(a.v.Load()) }
