package bench

import (
	"fmt"
	"testing"
	"time"
)

// throughputSteps are the offered loads of benchThroughput, in order:
// sensors on adjacent registers (merged into reads of ≤ 125 registers) at
// shorter intervals and in greater numbers.
var throughputSteps = []fleet{
	{n: 1000, base: 1000, stride: 1, interval: 500 * time.Millisecond}, // 2 000 readings/s
	{n: 1000, base: 1000, stride: 1, interval: 200 * time.Millisecond}, // 5 000
	{n: 1000, base: 1000, stride: 1, interval: 100 * time.Millisecond}, // 10 000
	{n: 2000, base: 1000, stride: 1, interval: 100 * time.Millisecond}, // 20 000
	{n: 2000, base: 1000, stride: 1, interval: 50 * time.Millisecond},  // 40 000
	{n: 4000, base: 1000, stride: 1, interval: 50 * time.Millisecond},  // 80 000
}

// throughputTarget is issue 12's end-to-end rate without a data_loss.
const throughputTarget = 20000

// benchThroughput steps hazmon's offered readings/s up until it reports a
// data_loss event (the buffer refused records) or cannot keep up (less
// than 95 % of the offered readings reach the subscriber), and reports
// the highest rate sustained and the first that was not.
func benchThroughput(t *testing.T, b bins) *mdTable {
	window := envDuration("HAZMON_BENCH_STEP_SECONDS", 10*time.Second)
	m := &mdTable{head: []string{"throughput step (hazmon, end to end to the subscriber)", "offered/s", "published/s", "data_loss", "CPU % of a core", "verdict"}}
	best, first := 0.0, ""
	for _, f := range throughputSteps {
		var r runResult
		t.Run(fmt.Sprintf("throughput/%.0f", f.offered()), func(t *testing.T) {
			r = runAgent(t, b, runSpec{kind: kindHazmon, fleet: f, warmup: 3 * time.Second, window: window})
		})
		name := fmt.Sprintf("%d sensors every %v", f.n, f.interval)
		if r.why != "" {
			m.add(name, num(f.offered(), 0), "n/a: "+r.why, "", "", "failed")
			first = fmt.Sprintf("%.0f (run failed)", f.offered())
			break
		}
		pub := float64(r.wire.readings+r.wire.historical) / r.window.Seconds()
		core := r.cpu.Seconds() / r.window.Seconds() * 100
		verdict := "sustained"
		switch {
		case r.dataLoss > 0:
			verdict = "refused (data_loss)"
		case pub < 0.95*f.offered():
			verdict = "falls behind"
		}
		m.add(name, num(f.offered(), 0), num(pub, 0), fmt.Sprint(r.dataLoss), num(core, 1), verdict)
		if verdict != "sustained" {
			first = fmt.Sprintf("%.0f (%s)", f.offered(), verdict)
			break
		}
		best = f.offered()
	}
	if first == "" {
		first = "none up to the last step"
	}
	ok := "NO"
	if best >= throughputTarget {
		ok = "yes"
	}
	m.add("highest rate sustained without data_loss", num(best, 0), "", "", "", fmt.Sprintf("target ≥ %d: %s", throughputTarget, ok))
	m.add("first rate not sustained", first, "", "", "", "")
	return m
}
