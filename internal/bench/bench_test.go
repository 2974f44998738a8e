package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/app"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/decode"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/safety"
)

// row is one line of the table.
type row struct {
	name, value, target string
	ok                  string // "yes", "NO", or "" (no target)
}

type table struct {
	mu   sync.Mutex
	rows []row
}

func (tb *table) add(name, value, target string, ok *bool) {
	r := row{name: name, value: value, target: target}
	if ok != nil {
		r.ok = "yes"
		if !*ok {
			r.ok = "NO"
		}
	}
	tb.mu.Lock()
	tb.rows = append(tb.rows, r)
	tb.mu.Unlock()
}

func (tb *table) print() string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "\nhazmon bench — %s/%s, %d CPUs, %s, host %s, %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), host, time.Now().Format("2006-01-02"))
	fmt.Fprintf(&b, "| %-58s | %-34s | %-16s | %-3s |\n", "figure", "measured", "target", "met")
	fmt.Fprintf(&b, "|%s|%s|%s|%s|\n", strings.Repeat("-", 60), strings.Repeat("-", 36), strings.Repeat("-", 18), strings.Repeat("-", 5))
	for _, r := range tb.rows {
		fmt.Fprintf(&b, "| %-58s | %-34s | %-16s | %-3s |\n", r.name, r.value, r.target, r.ok)
	}
	return b.String()
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

func bp(b bool) *bool { return &b }

// TestBenchTable runs every benchmark of issue 6 and prints one table.
func TestBenchTable(t *testing.T) {
	if os.Getenv("HAZMON_BENCH") != "1" {
		t.Skip("set HAZMON_BENCH=1 (make bench) to run the benchmark driver")
	}
	tb := &table{}
	defer func() { fmt.Println(tb.print()) }()
	benchRatio(t, tb)
	benchCoalescing(t, tb)
	benchRTU(t, tb, 9600, 3*time.Second, 0.85)
	benchRTU(t, tb, 115200, 2*time.Second, 0)
	benchAllocs(t, tb)
	benchPollAllocs(t, tb)
	benchAgent(t, tb)
}

// gasSensor is a methane sensor of slave 1 at holding register addr.
func gasSensor(id, bus string, addr int, iv time.Duration, format string) config.Sensor {
	return config.Sensor{ID: id, Type: "methane", Bus: bus, Slave: 1, Table: modbus.TableHolding,
		Address: addr, Format: format, Interval: config.Duration(iv)}
}

// pollRate runs a poller for d and returns the polls/s of sensor id
// (first to last reading).
func pollRate(t *testing.T, bus config.Bus, sensors []config.Sensor, id string, d time.Duration) (float64, modbus.BusStats) {
	var n atomic.Int64
	var first, last atomic.Int64
	p, err := modbus.NewPoller(bus, sensors, func(r reading.Reading) {
		if r.Sensor != id || !r.Valid() {
			return
		}
		now := time.Now().UnixNano()
		if n.Add(1) == 1 {
			first.Store(now)
		}
		last.Store(now)
	}, modbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Load() < 2 {
		t.Fatalf("bus %s: %d readings of %s in %v; stats %+v", bus.Name, n.Load(), id, d, p.Stats())
	}
	return float64(n.Load()-1) / time.Duration(last.Load()-first.Load()).Seconds(), p.Stats()
}

// benchRatio: the agent's poller against a bare goburrow loop on one
// Modbus TCP slave, interleaved so both see the same machine load.
func benchRatio(t *testing.T, tb *table) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 0, 30)
	addr := mbslavetest.StartTCP(t, bank)
	bare := func(d time.Duration) float64 {
		start := time.Now()
		return float64(bareReads(t, addr, d)) / time.Since(start).Seconds()
	}
	bus := config.Bus{Name: "tcp", Protocol: "tcp", Address: addr}
	// A 1 µs interval: the read is always due, so the poller reads back to back.
	sensors := []config.Sensor{gasSensor("CH4", "tcp", 0, time.Microsecond, "uint16")}
	var b, a float64
	for range 3 {
		b += bare(time.Second)
		r, _ := pollRate(t, bus, sensors, "CH4", time.Second)
		a += r
	}
	ratio := a / b
	tb.add("TCP poll throughput: agent / bare goburrow loop", fmt.Sprintf("%.2f (%.0f vs %.0f reads/s)", ratio, a/3, b/3), "≥ 0.9", bp(ratio >= 0.9))
}

// benchCoalescing: 100 sensors on adjacent registers, requests per poll
// cycle as counted by the slave.
func benchCoalescing(t *testing.T, tb *table) {
	perCycle := func(maxGap *int) float64 {
		bank := mbslave.NewBank()
		bank.AddUnit(1)
		addr := mbslavetest.StartTCP(t, bank)
		var sensors []config.Sensor
		for i := range 100 {
			sensors = append(sensors, config.Sensor{ID: fmt.Sprintf("T%03d", i), Type: "temperature", Bus: "tcp", Slave: 1,
				Table: modbus.TableHolding, Address: 100 + i, Format: "uint16", Interval: config.Duration(200 * time.Millisecond)})
		}
		var n atomic.Int64
		p, err := modbus.NewPoller(config.Bus{Name: "tcp", Protocol: "tcp", Address: addr, MaxGap: maxGap}, sensors,
			func(r reading.Reading) { n.Add(1) }, modbus.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 1100*time.Millisecond)
		defer cancel()
		p.Run(ctx)
		return float64(bank.Requests(1)) / (float64(n.Load()) / 100)
	}
	off := -1
	c, u := perCycle(nil), perCycle(&off)
	tb.add("requests per poll cycle, 100 adjacent sensors", fmt.Sprintf("%.1f coalesced vs %.1f (%.0f×)", c, u, u/c), "≥ 10× fewer", bp(u/c >= 10))
}

// benchRTU: a 10-register read (five float32 gas sensors, one request)
// back to back over a pty whose slave paces bytes at baud.
func benchRTU(t *testing.T, tb *table, baud int, d time.Duration, target float64) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	dev := mbslavetest.StartRTU(t, bank, baud)
	var sensors []config.Sensor
	for i := range 5 {
		sensors = append(sensors, gasSensor(fmt.Sprintf("G%d", i), "rtu", 2*i, time.Microsecond, "float32"))
	}
	bus := config.Bus{Name: "rtu", Protocol: "rtu", Device: dev, Baud: baud, Parity: "E", Timeout: config.Duration(time.Second)}
	got, st := pollRate(t, bus, sensors, "G0", d)
	limit := modbus.WireLimit(baud, 10)
	ratio := got / limit
	var ok *bool
	tgt := ""
	if target > 0 {
		ok, tgt = bp(ratio >= target), fmt.Sprintf("≥ %.2f", target)
	}
	tb.add(fmt.Sprintf("RTU %d baud, FC03 ×10: achieved / wire limit", baud),
		fmt.Sprintf("%.2f (%.1f of %.1f polls/s)", ratio, got, limit), tgt, ok)
	tb.add(fmt.Sprintf("RTU %d baud: bus utilisation, RTT p50/p99", baud),
		fmt.Sprintf("%.2f, %.1f/%.1f ms", st.Utilisation, ms(st.RTTP50), ms(st.RTTP99)), "", nil)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchConfig is the agent config of the binary runs: a methane sensor
// with alarm and cut-off rules driving a breaker coil on the slave, and n
// other sensors at 1 Hz on adjacent registers.
func benchConfig(dir, slave, broker string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `agent: {id: gw-bench, site: bench, data_dir: %q}
mqtt: {brokers: [%q], keepalive: 10s}
control: {socket: %q}
log: {level: warn, format: text}
buses:
  - {name: plc, protocol: tcp, address: %q, timeout: 1s}
outputs:
  - {name: BREAKER, modbus: {bus: plc, slave: 1, coil: 100}}
sensors:
  - id: CH4-1
    type: methane
    bus: plc
    slave: 1
    table: holding
    address: 0
    format: uint16
    scale: 0.01
    unit: "%%CH4"
    interval: 100ms
    range: [0, 4]
    rules:
      - {level: alarm, above: 1.0, clear_below: 1.0}
      - {level: cutoff, above: 1.5, clear_below: 1.0, outputs: [BREAKER], on_fault: cut}
`, dir, broker, filepath.Join(dir, "hazmon.sock"), slave)
	for i := range n {
		fmt.Fprintf(&b, "  - {id: T%03d, type: temperature, bus: plc, slave: 1, table: holding, address: %d, format: uint16, scale: 0.1, unit: C, interval: 1s}\n", i, 1000+i)
	}
	return b.String()
}

// benchAllocs: allocations per reading in decode + rules (steady state).
func benchAllocs(t *testing.T, tb *table) {
	ld, err := config.Parse("bench.yaml", []byte(benchConfig(t.TempDir(), "127.0.0.1:1", "tcp://127.0.0.1:1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ld.Config
	eng, err := safety.NewEngine(cfg.SensorRules())
	if err != nil {
		t.Fatal(err)
	}
	spec, err := decode.FromSensor(cfg.Sensors[0])
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte{0, 30}
	now := time.Now()
	allocs := testing.AllocsPerRun(10000, func() {
		v, err := spec.Bytes(raw)
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(100 * time.Millisecond)
		eng.Apply(reading.Reading{Sensor: "CH4-1", Type: "methane", Unit: "%CH4", Time: now, Value: v, Status: reading.StatusNormal}, now)
	})
	tb.add("allocations per reading: decode + rules", fmt.Sprintf("%.2f", allocs), "0", bp(allocs == 0))
}

// proc reads the CPU time (utime+stime) and peak RSS (VmHWM) of pid.
func proc(pid int) (cpu time.Duration, hwmKB int, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			hwmKB, _ = strconv.Atoi(strings.Fields(l)[1])
		}
	}
	return cpu, hwmKB, nil
}

// msg is an MQTT message with its arrival time.
type msg struct {
	at time.Time
	brokertest.Message
}

// collector timestamps and counts what the subscriber receives.
type collector struct {
	mu       sync.Mutex
	readings int       // live telemetry readings
	first    time.Time // first telemetry message
	ch4      []tsVal   // CH4-1 readings: sample ts and value
	alarms   []msg
}

type tsVal struct {
	ts int64
	v  float64
}

func (c *collector) run(ch <-chan brokertest.Message, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case m := <-ch:
			now := time.Now()
			switch {
			case strings.HasSuffix(m.Topic, "/telemetry"):
				var tm struct {
					Historical bool `json:"historical"`
					Readings   []struct {
						Sensor string   `json:"sensor"`
						TS     int64    `json:"ts"`
						Value  *float64 `json:"value"`
					} `json:"readings"`
				}
				if json.Unmarshal(m.Payload, &tm) != nil {
					continue
				}
				c.mu.Lock()
				if c.first.IsZero() {
					c.first = now
				}
				if !tm.Historical {
					c.readings += len(tm.Readings)
				}
				for _, r := range tm.Readings {
					if r.Sensor == "CH4-1" && r.Value != nil {
						c.ch4 = append(c.ch4, tsVal{r.TS, *r.Value})
					}
				}
				c.mu.Unlock()
			case strings.HasSuffix(m.Topic, "/alarm"):
				c.mu.Lock()
				c.alarms = append(c.alarms, msg{now, m})
				c.mu.Unlock()
			}
		}
	}
}

func (c *collector) snapshot() (readings int, first time.Time, nAlarms int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readings, c.first, len(c.alarms)
}

// waitUntil polls cond every 100 µs until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) (time.Time, bool) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return time.Now(), true
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Time{}, false
}

func pct(xs []time.Duration, p int) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// benchAgent runs the real binary with 500 sensors at 1 Hz.
func benchAgent(t *testing.T, tb *table) {
	const n = 500
	dir := t.TempDir()
	bin := filepath.Join(dir, "hazmon")
	root, _ := filepath.Abs("../..")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hazmon")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		tb.add("agent binary (start-up, CPU, RSS, alarm latency)", "n/a: go build ./cmd/hazmon failed", "", bp(false))
		t.Errorf("build: %v\n%s", err, out)
		return
	}
	broker := brokertest.Start(t)
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 0, 30) // 0.30 %CH4
	for i := range n {
		bank.SetHolding(1, uint16(1000+i), uint16(200+i))
	}
	slave := mbslavetest.StartTCP(t, bank)
	cfgPath := filepath.Join(dir, "hazmon.yaml")
	if err := os.WriteFile(cfgPath, []byte(benchConfig(filepath.Join(dir, "data"), slave, broker.URL, n)), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := broker.Subscribe(t, "bench-sub", "hazmon/#")
	col := &collector{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { col.run(sub, stop) })
	defer func() { close(stop); wg.Wait() }()

	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent stderr:\n%s", stderr.String())
		}
	}()
	if _, ok := waitUntil(20*time.Second, func() bool { _, f, _ := col.snapshot(); return !f.IsZero() }); !ok {
		tb.add("start-up to first published reading", "n/a: nothing published in 20 s", "", bp(false))
		t.Errorf("no telemetry within 20 s; agent stderr:\n%s", stderr.String())
		return
	}
	_, first, _ := col.snapshot()
	tb.add("start-up: exec to first published reading", fmt.Sprintf("%.0f ms", ms(first.Sub(start))), "", nil)

	// Steady state: 20 s after a 3 s warm-up.
	time.Sleep(3 * time.Second)
	r0, _, _ := col.snapshot()
	c0, _, err := proc(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second)
	r1, _, _ := col.snapshot()
	c1, _, _ := proc(cmd.Process.Pid)
	readings := r1 - r0
	perK := (c1 - c0).Seconds() / float64(readings) * 1000
	tb.add(fmt.Sprintf("%d sensors at 1 Hz: readings published per second", n), fmt.Sprintf("%.0f (schedule: %d)", float64(readings)/20, n+10), "", nil)
	tb.add(fmt.Sprintf("%d sensors at 1 Hz: CPU seconds per 1000 readings", n), fmt.Sprintf("%.4f s (%.1f %% of one core)", perK, (c1-c0).Seconds()/20*100), "", nil)

	// Alarm latency: methane 0.30 → 2.00 %CH4; the cut-off de-energises
	// the breaker coil (fail-safe) and raises the alarms.
	if _, ok := waitUntil(5*time.Second, func() bool { return bank.Coil(1, 100) }); !ok {
		tb.add("alarm latency", "n/a: breaker coil never energised (outputs not wired?)", "", bp(false))
	} else {
		latency(t, tb, bank, col)
	}
	_, hwm, _ := proc(cmd.Process.Pid)
	tb.add(fmt.Sprintf("%d sensors at 1 Hz: peak RSS of the agent", n), fmt.Sprintf("%.1f MB", float64(hwm)/1024), "< 25 MB", bp(hwm < 25*1024))
	cmd.Process.Signal(os.Interrupt)
	<-exited
	exited <- nil

	agentAllocs(t, tb, slave, broker.URL, n)
}

func latency(t *testing.T, tb *table, bank *mbslave.Bank, col *collector) {
	const trials = 15
	var toOut, toAlarm, outBeyond, alarmBeyond []time.Duration
	for i := range trials {
		_, _, a0 := col.snapshot()
		// Change at a random phase of the 100 ms poll.
		time.Sleep(time.Duration(37*i%100) * time.Millisecond)
		t0 := time.Now()
		bank.SetHolding(1, 0, 200)
		tOut, ok := waitUntil(5*time.Second, func() bool { return !bank.Coil(1, 100) })
		if !ok {
			t.Errorf("trial %d: breaker coil not cut within 5 s", i)
			break
		}
		tAlarm, ok := waitUntil(5*time.Second, func() bool {
			col.mu.Lock()
			defer col.mu.Unlock()
			for _, m := range col.alarms[a0:] {
				if strings.Contains(string(m.Payload), `"level":"cutoff"`) && strings.Contains(string(m.Payload), `"state":"raised"`) {
					return true
				}
			}
			return false
		})
		// The arrival time, not when we noticed it.
		col.mu.Lock()
		for _, m := range col.alarms[a0:] {
			if strings.Contains(string(m.Payload), `"level":"cutoff"`) && strings.Contains(string(m.Payload), `"state":"raised"`) {
				tAlarm = m.at
				break
			}
		}
		col.mu.Unlock()
		// The sample time of the first reading at or above the limit.
		var sample time.Time
		waitUntil(5*time.Second, func() bool {
			col.mu.Lock()
			defer col.mu.Unlock()
			for _, r := range col.ch4 {
				if r.v >= 1.5 && r.ts >= t0.UnixMilli()-1 {
					sample = time.UnixMilli(r.ts)
					return true
				}
			}
			return false
		})
		toOut = append(toOut, tOut.Sub(t0))
		if !sample.IsZero() {
			outBeyond = append(outBeyond, tOut.Sub(sample))
		}
		if ok {
			toAlarm = append(toAlarm, tAlarm.Sub(t0))
			if !sample.IsZero() {
				alarmBeyond = append(alarmBeyond, tAlarm.Sub(sample))
			}
		}
		bank.SetHolding(1, 0, 30)
		if _, ok := waitUntil(10*time.Second, func() bool { return bank.Coil(1, 100) }); !ok {
			t.Errorf("trial %d: breaker not restored within 10 s", i)
			break
		}
	}
	f := func(xs []time.Duration) string {
		if len(xs) == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f / %.1f ms (n=%d)", ms(pct(xs, 50)), ms(pct(xs, 99)), len(xs))
	}
	tb.add("register change → output write (coil), p50/p99", f(toOut), "", nil)
	tb.add("register change → alarm at subscriber, p50/p99", f(toAlarm), "", nil)
	p99 := pct(outBeyond, 99)
	tb.add("alarm → output beyond the poll (sample ts → coil), p50/p99", f(outBeyond), "p99 < 5 ms", bp(len(outBeyond) > 0 && p99 < 5*time.Millisecond))
	tb.add("sample ts → alarm at subscriber, p50/p99", f(alarmBeyond), "", nil)
}

// agentAllocs runs the agent in-process (app.App, same config) for 10 s
// and divides the heap allocations by the readings it published. The
// subscriber runs in the same process, so this is an upper bound.
func agentAllocs(t *testing.T, tb *table, slave, broker string, n int) {
	dir := t.TempDir()
	ld, err := config.Parse("bench.yaml", []byte(benchConfig(dir, slave, broker, n)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ld.Config, app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	bk := brokertest.Broker{URL: broker}
	sub := bk.Subscribe(t, "bench-allocs", "hazmon/#")
	col := &collector{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { col.run(sub, stop) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	time.Sleep(3 * time.Second)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	r0, _, _ := col.snapshot()
	time.Sleep(10 * time.Second)
	runtime.ReadMemStats(&m1)
	r1, _, _ := col.snapshot()
	cancel()
	<-done
	close(stop)
	wg.Wait()
	per := float64(m1.Mallocs-m0.Mallocs) / float64(max(r1-r0, 1))
	tb.add(fmt.Sprintf("%d sensors: allocations per reading, whole agent", n), fmt.Sprintf("%.1f (%d readings)", per, r1-r0), "", nil)
}

// benchPollAllocs: heap allocations per reading of the poll path (poller,
// goburrow packager, our TCP transporter, decode), 100 coalesced sensors
// every 10 ms for 2 s. The slave runs in the same process: an upper bound.
func benchPollAllocs(t *testing.T, tb *table) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	addr := mbslavetest.StartTCP(t, bank)
	var sensors []config.Sensor
	for i := range 100 {
		sensors = append(sensors, config.Sensor{ID: fmt.Sprintf("T%03d", i), Type: "temperature", Bus: "tcp", Slave: 1,
			Table: modbus.TableHolding, Address: i, Format: "uint16", Interval: config.Duration(10 * time.Millisecond)})
	}
	var n atomic.Int64
	p, err := modbus.NewPoller(config.Bus{Name: "tcp", Protocol: "tcp", Address: addr}, sensors,
		func(r reading.Reading) { n.Add(1) }, modbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	n0 := n.Load()
	time.Sleep(2 * time.Second)
	runtime.ReadMemStats(&m1)
	n1 := n.Load()
	cancel()
	<-done
	per := float64(m1.Mallocs-m0.Mallocs) / float64(max(n1-n0, 1))
	tb.add("allocations per reading: poll path (100 coalesced, + slave)", fmt.Sprintf("%.3f (%d readings)", per, n1-n0), "as low as possible", nil)
}
