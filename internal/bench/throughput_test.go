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

// benchThroughput steps hazmon's offered readings/s up and reports the
// highest rate sustained (no data_loss event, at least 95 % of the offered
// readings reach the subscriber), the first rate that was not, and the
// first at which the agent reported data_loss (the buffer refused
// records): past the first miss it steps on until data_loss or the last
// step.
func benchThroughput(t *testing.T, b bins) *mdTable {
	window := envDuration("HAZMON_BENCH_STEP_SECONDS", 8*time.Second)
	m := &mdTable{head: []string{"throughput step (hazmon, end to end to the subscriber)", "offered/s", "published/s", "slave requests/s (schedule)", "data_loss", "CPU % of a core", "verdict"}}
	best, first, refused := 0.0, "", ""
	for _, f := range throughputSteps {
		var r runResult
		t.Run(fmt.Sprintf("throughput/%.0f", f.offered()), func(t *testing.T) {
			r = runAgent(t, b, runSpec{kind: kindHazmon, fleet: f, warmup: 3 * time.Second, window: window})
		})
		name := fmt.Sprintf("%d sensors every %v", f.n, f.interval)
		if r.why != "" {
			m.add(name, num(f.offered(), 0), "n/a: "+r.why, "", "", "", "failed")
			if first == "" {
				first = fmt.Sprintf("%.0f (run failed)", f.offered())
			}
			break
		}
		pub := float64(r.wire.readings+r.wire.historical) / r.wireSpan.Seconds()
		core := r.cpu.Seconds() / r.window.Seconds() * 100
		verdict := "sustained"
		switch {
		case r.dataLoss > 0:
			verdict = "refused (data_loss)"
		case pub < 0.95*f.offered():
			verdict = "falls behind"
		}
		// Reads of ≤ 125 adjacent registers per request.
		sched := float64((f.n+124)/125) / f.interval.Seconds()
		m.add(name, num(f.offered(), 0), num(pub, 0), fmt.Sprintf("%s (%s)", num(float64(r.requests)/r.window.Seconds(), 0), num(sched, 0)),
			fmt.Sprint(r.dataLoss), num(core, 1), verdict)
		if verdict == "sustained" && first == "" {
			best = f.offered()
			continue
		}
		if first == "" {
			first = fmt.Sprintf("%.0f (%s)", f.offered(), verdict)
		}
		// Past the first miss, go on stepping up only until data_loss.
		if r.dataLoss > 0 {
			refused = num(f.offered(), 0)
			break
		}
	}
	if first == "" {
		first = "none up to the last step"
	}
	if refused == "" {
		refused = "none up to the last step"
	}
	ok := "NO"
	if best >= throughputTarget {
		ok = "yes"
	}
	m.add("highest rate sustained without data_loss", num(best, 0), "", "", "", "", fmt.Sprintf("target ≥ %d: %s", throughputTarget, ok))
	m.add("first rate not sustained", first, "", "", "", "", "")
	m.add("first rate with data_loss", refused, "", "", "", "", "")
	return m
}
