package modbus

import (
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
)

// A round-trip time equal to a bucket's bound counts in that bucket (the
// Prometheus "le" rule), one above the largest bound in the last, and the
// sum adds up every transaction.
func TestRTTHistogram_BoundsAreInclusive(t *testing.T) {
	var h RTTHistogram
	for _, d := range []time.Duration{0, time.Millisecond, time.Millisecond + 1, 5 * time.Second, time.Minute} {
		h.observe(d)
	}
	want := [len(RTTBuckets) + 1]uint64{0: 2, 1: 1, len(RTTBuckets) - 1: 1, len(RTTBuckets): 1}
	if h.Counts != want {
		t.Errorf("counts %v, want %v", h.Counts, want)
	}
	if h.Count() != 5 || h.Sum != 2*time.Millisecond+1+5*time.Second+time.Minute {
		t.Errorf("count %d sum %v", h.Count(), h.Sum)
	}
	for i := 1; i < len(RTTBuckets); i++ {
		if RTTBuckets[i] <= RTTBuckets[i-1] {
			t.Fatalf("RTTBuckets not increasing at %d: %v", i, RTTBuckets)
		}
	}
}

// Every transaction a poller sends, replied or timed out, lands in the
// bus's RTT histogram with the time it took on the (fake) clock, and
// recording it does not allocate.
func TestPoller_RTTHistogramCountsEveryTransaction(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := newStepPoller(t, timeout, []config.Sensor{methane("CH4", 0, time.Second)}, Options{}, everyNthLost(9, timeout))
	s.runFor(45 * time.Second)
	st := s.p.Stats()
	h := st.RTT
	if h.Count() != st.Requests || st.Requests == 0 {
		t.Fatalf("histogram holds %d transactions, the bus sent %d", h.Count(), st.Requests)
	}
	// Replies take 20 ms (bucket ≤ 25 ms), lost ones the 300 ms timeout (≤ 500 ms).
	i20, i300 := bucketOf(20*time.Millisecond), bucketOf(timeout)
	if h.Counts[i300] != st.Timeouts || h.Counts[i20] != st.Requests-st.Timeouts {
		t.Errorf("counts %v: want %d in bucket %d (replies) and %d in bucket %d (timeouts)",
			h.Counts, st.Requests-st.Timeouts, i20, st.Timeouts, i300)
	}
	wantSum := time.Duration(st.Requests-st.Timeouts)*20*time.Millisecond + time.Duration(st.Timeouts)*timeout
	if h.Sum != wantSum {
		t.Errorf("sum %v, want %v", h.Sum, wantSum)
	}

	var m meter
	m.reset(time.Now())
	var bs BusStats
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { m.add(&bs, 3*time.Millisecond, time.Millisecond, now) }); n != 0 {
		t.Errorf("meter.add allocates %.1f times per transaction", n)
	}
}

func bucketOf(d time.Duration) int {
	for i, b := range RTTBuckets {
		if d <= b {
			return i
		}
	}
	return len(RTTBuckets)
}
