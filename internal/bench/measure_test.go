package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// agentKind is which agent a run measures.
type agentKind int

const (
	kindHazmon agentKind = iota
	kindTelegrafMem
	kindTelegrafDisk
)

func (k agentKind) String() string {
	return [...]string{"hazmon", "Telegraf (mem)", "Telegraf (disk)"}[k]
}

// bins are the binaries under test; telegraf is "" when it could not be built.
type bins struct {
	hazmon, telegraf string
}

// runSpec is one run: an agent, its sensors, and the windows.
type runSpec struct {
	kind       agentKind
	fleet      fleet
	tgInterval time.Duration // Telegraf's collection interval; 0: fleet.interval
	warmup     time.Duration // after the first reading, before the window
	window     time.Duration // CPU, wire, disk and slave requests are counted over it
	syncWindow time.Duration // strace window after it; 0: no syscall count
}

// runResult is what one run measured over its window.
type runResult struct {
	why      string // non-empty: the run did not get to measure
	window   time.Duration
	cpu      time.Duration
	hwmKB    int
	wire     wireCount // over wireSpan: first to last message with readings in the window
	wireSpan time.Duration
	dataLoss int   // data_loss events over the whole run
	disk     int64 // bytes written over the window; -1: n/a
	syncs    syncCount
	requests int // Modbus requests the slave answered over the window
}

// runAgent runs one agent against a fresh Modbus TCP slave (mbslave, in
// this process) and a fresh Mosquitto, with a subscriber to "#" counting
// what arrives, and measures the agent's process over spec.window.
func runAgent(t *testing.T, b bins, s runSpec) (r runResult) {
	dir := t.TempDir()
	broker := brokertest.Start(t)
	bank := mbslave.NewBank()
	s.fleet.load(bank)
	slave := mbslavetest.StartTCP(t, bank)
	sub := broker.Subscribe(t, "bench-wire", "#")
	wc := &wireCounter{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { wc.run(sub, stop) })
	defer func() { close(stop); wg.Wait() }()

	var c *child
	switch s.kind {
	case kindHazmon:
		cfg := filepath.Join(dir, "hazmon.yaml")
		if err := os.WriteFile(cfg, []byte(s.fleet.hazmonConfig(dir, slave, broker.URL)), 0o644); err != nil {
			t.Fatal(err)
		}
		c = startChild(t, "hazmon", b.hazmon, nil, "run", "--config", cfg)
	default:
		buf := tgMemory
		if s.kind == kindTelegrafDisk {
			buf = tgDisk
		}
		iv := s.tgInterval
		if iv == 0 {
			iv = s.fleet.interval
		}
		cfg := filepath.Join(dir, "telegraf.conf")
		conf := telegrafConfig(slave, broker.URL, iv, s.fleet.telegrafFields(), buf, filepath.Join(dir, "buffer"))
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		c = startChild(t, "telegraf", b.telegraf, nil, "--config", cfg)
	}
	defer c.stop()
	if !waitFor(60*time.Second, func() bool { return wc.snapshot().readings > 0 || !c.alive() }) || !c.alive() {
		r.why = fmt.Sprintf("%s published no reading within 60 s (alive %v): %s", s.kind, c.alive(), lastLines(c.stderr.String(), 5))
		return r
	}
	time.Sleep(s.warmup)
	s0, err := sampleProc(c.pid())
	if err != nil {
		r.why = err.Error()
		return r
	}
	w0, q0 := wc.snapshot(), bank.Requests(1)
	time.Sleep(s.window)
	s1, err := sampleProc(c.pid())
	if err != nil {
		r.why = err.Error()
		return r
	}
	w1, q1 := wc.snapshot(), bank.Requests(1)
	d := s0.to(s1)
	r.window, r.cpu, r.hwmKB, r.disk = d.wall, d.cpu, s1.hwmKB, d.writeBytes
	r.wire, r.requests = w1.minus(w0), q1-q0
	if c, span, ok := wc.between(s0.at, s1.at); ok {
		r.wire, r.wireSpan = c, span
	} else {
		r.wireSpan = d.wall
	}
	if s.syncWindow > 0 {
		r.syncs = countSyncs(c.pid(), s.syncWindow, dir)
	}
	r.dataLoss = wc.snapshot().dataLoss
	if !c.alive() {
		r.why = fmt.Sprintf("%s exited during the run: %s", s.kind, lastLines(c.stderr.String(), 5))
	}
	return r
}

// waitFor polls cond every 20 ms (cheaply: the agents are measured
// meanwhile) until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

// figures are the per-run numbers the side-by-side table shows; NaN = n/a.
type figures map[string]float64

const (
	figReadings  = "readings/s"
	figCPUPerK   = "cpu s/1000"
	figCore      = "core %"
	figRSS       = "rss MB"
	figBytesRd   = "bytes/reading"
	figTelemRd   = "telemetry bytes/reading"
	figTelemV2Rd = "telemetry v2 bytes/reading"
	figCurrentRd = "current bytes/reading"
	figRestRd    = "rest bytes/reading"
	figMQTTKBs   = "mqtt kB/s"
	figDiskKBs   = "disk kB/s"
	figDiskRd    = "disk bytes/reading"
	figSyncs     = "syncs/s"
	figDataLoss  = "data_loss"
)

func (r runResult) figures() figures {
	nan := math.NaN()
	rd := float64(r.wire.readings)
	per := func(x int64) float64 {
		if rd == 0 {
			return nan
		}
		return float64(x) / rd
	}
	f := figures{
		figReadings: rd / r.wireSpan.Seconds(),
		figCPUPerK:  nan,
		figCore:     r.cpu.Seconds() / r.window.Seconds() * 100,
		figRSS:      float64(r.hwmKB) / 1024,
		figBytesRd:  per(r.wire.total()),
		figMQTTKBs:  float64(r.wire.total()) / r.wireSpan.Seconds() / 1000,
		figDiskKBs:  nan,
		figDiskRd:   nan,
		figSyncs:    nan,
		figDataLoss: float64(r.dataLoss),
	}
	if rd > 0 {
		// Readings over the CPU window at the rate measured over wireSpan.
		f[figCPUPerK] = r.cpu.Seconds() / (rd / r.wireSpan.Seconds() * r.window.Seconds()) * 1000
	}
	if r.wire.telegraf == 0 {
		f[figTelemRd], f[figTelemV2Rd], f[figCurrentRd], f[figRestRd] = per(r.wire.telemetry), per(r.wire.telemetryV2), per(r.wire.current), per(r.wire.rest)
	}
	if r.disk >= 0 {
		f[figDiskKBs] = float64(r.disk) / r.window.Seconds() / 1000
		if rd > 0 {
			f[figDiskRd] = float64(r.disk) / (rd / r.wireSpan.Seconds() * r.window.Seconds())
		}
	}
	if r.syncs.ok {
		f[figSyncs] = r.syncs.perSecond()
	}
	return f
}

// median is the per-figure median of runs (NaNs ignored; all NaN → NaN).
func median(runs []figures) figures {
	out := figures{}
	for _, f := range runs {
		for k := range f {
			out[k] = math.NaN()
		}
	}
	for k := range out {
		var xs []float64
		for _, f := range runs {
			if v, ok := f[k]; ok && !math.IsNaN(v) {
				xs = append(xs, v)
			}
		}
		if len(xs) == 0 {
			continue
		}
		slices.Sort(xs)
		if len(xs)%2 == 1 {
			out[k] = xs[len(xs)/2]
		} else {
			out[k] = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
		}
	}
	return out
}
