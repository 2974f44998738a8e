package bench

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	gmodbus "github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// ceilingRequests are how many requests the "many requests on one
// connection" hazmon configs put on their bus: that many sensors at the
// shortest interval a config accepts, each read on its own (max_gap -1),
// so the bus is asked for ceilingRequests × 100 polls/s — the last more
// than a bare loop manages, so it shows the agent's ceiling.
var ceilingRequests = []int{50, 300}

// benchCeiling measures the poll ceiling the way a user meets it: through
// config files, each agent against its own Modbus TCP slave, counting the
// requests the slave answered and the agent's CPU time. The bare goburrow
// loop runs in a child process (this test binary, TestBareLoopChild) so
// its CPU is measured the same way.
func benchCeiling(t *testing.T, b bins) *mdTable {
	window := envDuration("HAZMON_BENCH_CEILING_SECONDS", 5*time.Second)
	m := &mdTable{head: []string{"poll ceiling, one Modbus TCP connection (config a user writes)", "polls/s", "CPU ms per poll", "vs bare loop", "target", "met"}}
	iv := config.MinInterval
	var bare ceilingResult
	t.Run("ceiling/bare-goburrow", func(t *testing.T) { bare = bareLoop(t, window) })
	add := func(name string, c ceilingResult, target string, ok func(float64) bool) {
		if c.why != "" {
			m.add(name, "n/a: "+c.why, "", "", target, "n/a")
			return
		}
		rs, rv := ratio(c.pollsPerS, bare.pollsPerS)
		okS := ""
		if ok != nil {
			okS = met(rv, ok)
		}
		m.add(name, num(c.pollsPerS, 0), num(c.cpuMsPerPoll, 3), rs, target, okS)
	}
	run := func(name string, spec runSpec) ceilingResult {
		var c ceilingResult
		t.Run("ceiling/"+name, func(t *testing.T) {
			r := runAgent(t, b, spec)
			c = ceilingOf(r)
			if c.why != "" {
				t.Errorf("%s", c.why)
			}
		})
		return c
	}
	one := fleet{n: 1, base: 0, stride: 1, interval: iv}
	h1 := run("hazmon-1", runSpec{kind: kindHazmon, fleet: one, warmup: 2 * time.Second, window: window})
	add(fmt.Sprintf("hazmon: 1 sensor, interval %v (the shortest accepted)", iv), h1, "", nil)
	for i, k := range ceilingRequests {
		many := fleet{n: k, base: 0, stride: 200, interval: iv, maxGap: "-1"}
		hN := run(fmt.Sprintf("hazmon-%d", k), runSpec{kind: kindHazmon, fleet: many, warmup: 2 * time.Second, window: window})
		tgt, ok := "", (func(float64) bool)(nil)
		if i == len(ceilingRequests)-1 {
			tgt, ok = "≥ 0.95×", atLeast(0.95)
		}
		add(fmt.Sprintf("hazmon: %d sensors, interval %v, max_gap -1 (asks %d polls/s)", k, iv, k*int(time.Second/iv)), hN, tgt, ok)
	}
	if b.telegraf != "" {
		// Telegraf gathers again as soon as the ticker fires and the
		// previous gather is done: a 100 µs interval keeps it busy.
		tgIv := 100 * time.Microsecond
		tg := run("telegraf", runSpec{kind: kindTelegrafMem, fleet: fleet{n: 1, base: 0, stride: 1, interval: time.Second}, tgInterval: tgIv,
			warmup: 2 * time.Second, window: window})
		add(fmt.Sprintf("Telegraf (mem): 1 field, interval %v", tgIv), tg, "", nil)
	} else {
		m.add("Telegraf", "skipped", "", "", "", "")
	}
	add("bare goburrow loop (ReadHoldingRegisters back to back)", bare, "", nil)
	return m
}

// ceilingResult is polls/s and CPU per poll of one ceiling run.
type ceilingResult struct {
	pollsPerS, cpuMsPerPoll float64
	why                     string
}

func ceilingOf(r runResult) ceilingResult {
	if r.why != "" {
		return ceilingResult{why: r.why}
	}
	if r.requests == 0 {
		return ceilingResult{why: "the slave answered no request in the window"}
	}
	return ceilingResult{pollsPerS: float64(r.requests) / r.window.Seconds(), cpuMsPerPoll: r.cpu.Seconds() * 1000 / float64(r.requests)}
}

// bareLoop runs TestBareLoopChild in a child process against a fresh
// slave and measures it over window after a 1 s warm-up.
func bareLoop(t *testing.T, window time.Duration) ceilingResult {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 0, 30)
	addr := mbslavetest.StartTCP(t, bank)
	secs := (window + 3*time.Second).Seconds()
	c := startChild(t, "bare-loop", os.Args[0], []string{"HAZMON_BENCH_BARE_ADDR=" + addr, "HAZMON_BENCH_BARE_SECONDS=" + strconv.FormatFloat(secs, 'f', 1, 64)},
		"-test.run=^TestBareLoopChild$", "-test.count=1")
	defer c.stop()
	if !waitFor(10*time.Second, func() bool { return bank.Requests(1) > 0 || !c.alive() }) || !c.alive() {
		return ceilingResult{why: "bare loop did not start: " + lastLines(c.stderr.String(), 5)}
	}
	time.Sleep(time.Second)
	s0, err := sampleProc(c.pid())
	if err != nil {
		return ceilingResult{why: err.Error()}
	}
	q0 := bank.Requests(1)
	time.Sleep(window)
	s1, err := sampleProc(c.pid())
	if err != nil {
		return ceilingResult{why: err.Error()}
	}
	q1 := bank.Requests(1)
	d := s0.to(s1)
	return ceilingOf(runResult{window: d.wall, cpu: d.cpu, requests: q1 - q0})
}

// TestBareLoopChild is the bare goburrow loop of the poll ceiling: it runs
// only as benchCeiling's child (HAZMON_BENCH_BARE_ADDR set), reading one
// holding register back to back on one connection for
// HAZMON_BENCH_BARE_SECONDS.
func TestBareLoopChild(t *testing.T) {
	addr := os.Getenv("HAZMON_BENCH_BARE_ADDR")
	if addr == "" {
		t.Skip("child process of the poll-ceiling bench (HAZMON_BENCH=1 make bench)")
	}
	bareReads(t, addr, envDuration("HAZMON_BENCH_BARE_SECONDS", 10*time.Second))
}

// bareReads is the bare goburrow loop both baselines measure: it reads
// holding register 0 of unit 1 at addr back to back on one connection for
// d and returns how many reads it made; an error fails t.
func bareReads(t testing.TB, addr string, d time.Duration) int {
	t.Helper()
	h := gmodbus.NewTCPClientHandler(addr)
	h.SlaveId, h.Timeout = 1, time.Second
	if err := h.Connect(); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cl := gmodbus.NewClient(h)
	n := 0
	for start := time.Now(); time.Since(start) < d; n++ {
		if _, err := cl.ReadHoldingRegisters(0, 1); err != nil {
			t.Fatal(err)
		}
	}
	return n
}
