package modbus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/reading"
)

func intp(v int) *int { return &v }

// adjacent returns n uint16 holding-register sensors of slave 1 at
// addresses first, first+step, ...
func adjacent(bus string, n, first, step int, iv config.Duration) []config.Sensor {
	out := make([]config.Sensor, n)
	for i := range out {
		out[i] = config.Sensor{ID: fmt.Sprintf("S%03d", i), Type: "temperature", Bus: bus, Slave: 1,
			Table: TableHolding, Address: first + i*step, Format: "uint16", Interval: iv}
	}
	return out
}

func TestBuildGroups(t *testing.T) {
	mk := func(table string, addr int, format string, iv int) config.Sensor {
		return config.Sensor{ID: fmt.Sprintf("%s%d-%d", table, addr, iv), Type: "co", Bus: "b", Slave: 1,
			Table: table, Address: addr, Format: format, Interval: ms(iv)}
	}
	var coils []config.Sensor // every 100th coil, 0..2000
	for a := 0; a <= 2000; a += 100 {
		coils = append(coils, mk("coil", a, "bool", 100))
	}
	for _, c := range []struct {
		name    string
		maxGap  *int
		sensors []config.Sensor
		want    string // groups as table:addr+count, in order
	}{
		{"adjacent", nil, []config.Sensor{mk("holding", 2, "uint16", 100), mk("holding", 0, "float32", 100), mk("holding", 3, "int16", 100)}, "holding:0+4"},
		{"gap of 10 merges, 11 does not", nil, []config.Sensor{mk("holding", 0, "uint16", 100), mk("holding", 11, "uint16", 100), mk("holding", 23, "uint16", 100)}, "holding:0+12 holding:23+1"},
		{"max_gap 0: adjacent only", intp(0), []config.Sensor{mk("input", 0, "uint16", 100), mk("input", 1, "uint16", 100), mk("input", 3, "uint16", 100)}, "input:0+2 input:3+1"},
		{"max_gap -1: one per sensor", intp(-1), []config.Sensor{mk("input", 0, "uint16", 100), mk("input", 1, "uint16", 100)}, "input:0+1 input:1+1"},
		{"other interval, other table", nil, []config.Sensor{mk("holding", 0, "uint16", 100), mk("holding", 1, "uint16", 200), mk("input", 1, "uint16", 100)}, "holding:0+1 holding:1+1 input:1+1"},
		{"125 registers at most", intp(125), []config.Sensor{mk("holding", 0, "uint16", 100), mk("holding", 123, "float32", 100), mk("holding", 124, "float32", 100)}, "holding:0+125 holding:124+2"},
		{"2000 coils at most", intp(125), coils, "coil:0+1901 coil:2000+1"},
	} {
		bus := config.Bus{Name: "b", Protocol: "tcp", Address: "127.0.0.1:1", MaxGap: c.maxGap}
		p, err := NewPoller(bus, c.sensors, func(reading.Reading) {}, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got []string
		for _, g := range p.groups {
			got = append(got, fmt.Sprintf("%s:%d+%d", g.table, g.addr, g.count))
		}
		if s := strings.Join(got, " "); s != c.want {
			t.Errorf("%s: groups %q, want %q", c.name, s, c.want)
		}
		if st := p.Stats(); st.Reads != len(p.groups) || st.Sensors != len(c.sensors) {
			t.Errorf("%s: stats %+v", c.name, st)
		}
	}
}

// 100 sensors on adjacent registers cost one request per poll cycle
// (counted by the slave), not 100, and each gets its own value.
func TestPoller_Coalesces100Adjacent(t *testing.T) {
	for _, c := range []struct {
		name   string
		maxGap *int
		reads  int
	}{{"coalesced", nil, 1}, {"one per sensor", intp(-1), 100}} {
		t.Run(c.name, func(t *testing.T) {
			bank := mbslave.NewBank()
			bank.AddUnit(1)
			for i := range 100 {
				bank.SetHolding(1, uint16(100+i), uint16(i*7))
			}
			addr := mbslavetest.StartTCP(t, bank)
			p, s := startPoller(t, config.Bus{Name: "gw", Protocol: "tcp", Address: addr, MaxGap: c.maxGap},
				adjacent("gw", 100, 100, 1, ms(300)))
			s.waitFor(t, "S099", 10*time.Second, "3 readings", func(rs []reading.Reading) bool { return len(rs) >= 3 })
			for i := range 100 {
				rs := s.of(fmt.Sprintf("S%03d", i))
				if len(rs) < 2 || !rs[0].Valid() || rs[0].Value != float64(i*7) {
					t.Fatalf("sensor %d: %+v", i, rs)
				}
			}
			st := p.Stats()
			if st.Reads != c.reads {
				t.Errorf("reads per cycle %d, want %d", st.Reads, c.reads)
			}
			s.mu.Lock()
			cycles := float64(len(s.rs)) / 100
			s.mu.Unlock()
			perCycle := float64(bank.Requests(1)) / cycles
			if perCycle < float64(c.reads)*0.9 || perCycle > float64(c.reads)*1.1 {
				t.Errorf("slave saw %.2f requests per cycle, want %d", perCycle, c.reads)
			}
		})
	}
}

// An exception to a merged read (an unmapped register between two
// sensors) does not fault the neighbours: the sensors are read one by one
// at once and for SplitHold after.
func TestPoller_ExceptionSplitsMergedRead(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 0, 11)
	bank.SetHolding(1, 10, 33)
	bank.SetInvalid(1, mbslave.HoldingRegisters, 5, 1)
	addr := mbslavetest.StartTCP(t, bank)
	sensors := []config.Sensor{
		{ID: "A", Type: "methane", Bus: "gw", Slave: 1, Table: TableHolding, Address: 0, Format: "uint16", Interval: ms(200)},
		{ID: "BAD", Type: "methane", Bus: "gw", Slave: 1, Table: TableHolding, Address: 5, Format: "uint16", Interval: ms(200)},
		{ID: "C", Type: "methane", Bus: "gw", Slave: 1, Table: TableHolding, Address: 10, Format: "uint16", Interval: ms(200)},
	}
	p, s := startPoller(t, config.Bus{Name: "gw", Protocol: "tcp", Address: addr}, sensors)
	s.waitFor(t, "C", 10*time.Second, "4 readings", func(rs []reading.Reading) bool { return len(rs) >= 4 })
	for id, want := range map[string]float64{"A": 11, "C": 33} {
		for i, r := range s.of(id) {
			if !r.Valid() || r.Value != want {
				t.Fatalf("%s reading %d: %+v, want %v (the first tick too)", id, i, r, want)
			}
		}
	}
	for _, r := range s.of("BAD") {
		if r.Status != reading.StatusFault || !strings.Contains(r.Err, "bus gw: slave 1: read holding 5: exception 2 (illegal data address)") {
			t.Fatalf("BAD reading %+v", r)
		}
	}
	st := p.Stats()
	if st.Reads != 1 || st.Split != 1 {
		t.Errorf("stats %+v, want 1 read, split", st)
	}
	// One failed merged read, then 3 requests per cycle.
	cycles := len(s.of("A"))
	if n := bank.Requests(1); n < 1+3*(cycles-1) || n > 1+3*(cycles+1) {
		t.Errorf("slave saw %d requests in %d cycles, want 1 + 3 per cycle", n, cycles)
	}
}

// An over-subscribed RTU bus at 9600 baud (20 reads every 100 ms want
// about 8× what the wire carries) says so and keeps on time, at their
// 200 ms, the reads its cut-offs depend on as config.Config.OnTime names
// them: a fan-running contact with a cut-off rule (ventilation-power
// interlock), a breaker's feed contact, a non-methane (wind) cut-off
// sensor and a methane sensor; only the 20 comfort sensors stretch.
func TestPoller_OverloadKeepsInterlocksOnTime(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	bank.SetHolding(1, 5000, 42)
	bank.SetHolding(1, 6000, 30)
	bank.SetDiscrete(1, 7, true)
	bank.SetDiscrete(1, 300, true)
	dev := mbslavetest.StartRTU(t, bank, 9600)
	no := false
	sensors := adjacent("rs", 20, 0, 100, ms(100)) // 100 apart: 20 reads
	sensors = append(sensors,
		config.Sensor{ID: "CH4", Type: "methane", Bus: "rs", Slave: 1, Table: TableHolding, Address: 5000, Format: "uint16", Interval: ms(200)},
		config.Sensor{ID: "WIND", Type: "wind", Bus: "rs", Slave: 1, Table: TableHolding, Address: 6000, Format: "uint16", Interval: ms(200),
			Rules: []config.Rule{{Level: "cutoff", Below: f64(5), Outputs: []string{"BRK"}}}},
		config.Sensor{ID: "FAN", Type: "digital", Bus: "rs", Slave: 1, Table: TableDiscrete, Address: 7, Format: "bool", Interval: ms(200),
			Rules: []config.Rule{{Level: "cutoff", Equals: &no, Outputs: []string{"BRK"}}}},
		config.Sensor{ID: "FEED", Type: "digital", Bus: "rs", Slave: 1, Table: TableDiscrete, Address: 300, Format: "bool", Interval: ms(200)})
	cfg := &config.Config{Sensors: sensors, Outputs: []config.Output{{Name: "BRK", Feed: "FEED", Modbus: &config.ModbusCoil{Bus: "rs", Slave: 1}}}}
	p, s := startPoller(t, config.Bus{Name: "rs", Protocol: "rtu", Device: dev, Baud: 9600, Parity: "E", Timeout: ms(1000)}, sensors,
		Options{OnTime: cfg.OnTime})
	time.Sleep(500 * time.Millisecond)
	before := map[string]int{}
	onTime := []string{"CH4", "WIND", "FAN", "FEED"}
	for _, id := range onTime {
		before[id] = len(s.of(id))
	}
	time.Sleep(4 * time.Second)
	st := p.Stats()
	for _, id := range onTime {
		got := len(s.of(id)) - before[id]
		// 20 ticks in 4 s; stretched, it would get about one read in 14.
		if got < 12 {
			t.Errorf("%s: %d readings in 4 s at 200 ms, want >= 12 (kept on time); stats %+v", id, got, st)
		}
		for _, r := range s.of(id) {
			if !r.Valid() {
				t.Fatalf("%s reading %+v", id, r)
			}
		}
	}
	if !st.Overloaded || st.Load < 2 || st.Stretched != 20 {
		t.Errorf("stats %+v, want overloaded with the 20 comfort sensors stretched", st)
	}
	// Stretched, not starved: the last comfort sensor is read too (on a
	// loaded host the wire carries less, so it may take a few periods).
	s.waitFor(t, "S019", 10*time.Second, "a reading of the last stretched sensor", func(rs []reading.Reading) bool { return len(rs) > 0 })
	// The wire is busy nearly all the time: utilisation from frame sizes.
	if st.Utilisation < 0.5 || st.Utilisation > 1.1 || st.RequestsPerSec < 15 || st.RequestsPerSec > 45 {
		t.Errorf("utilisation %.2f, %.1f requests/s; want about 0.9 and about 35/s", st.Utilisation, st.RequestsPerSec)
	}
	// One register: 15 characters of 1.146 ms plus t3.5 (4.01 ms).
	if st.RTTP50 < 15*time.Millisecond || st.RTTP99 < st.RTTP50 || st.RTTP90 < st.RTTP50 {
		t.Errorf("RTT p50 %v p90 %v p99 %v, want p50 >= 15 ms at 9600 baud", st.RTTP50, st.RTTP90, st.RTTP99)
	}
}

// A read that is not due on its own is not read: stretched reads stay on
// their grid (whole multiples of the interval, no drift).
func TestPoller_StretchStaysOnGrid(t *testing.T) {
	start := time.Unix(1000, 0)
	g := &group{interval: 100 * time.Millisecond, stretch: 3, start: start, next: start}
	advance(g, start.Add(time.Millisecond))
	if got := g.next.Sub(start); got != 300*time.Millisecond {
		t.Fatalf("next = %v, want 300ms", got)
	}
	n := advance(g, start.Add(301*time.Millisecond))
	if got := g.next.Sub(start); got != 600*time.Millisecond || n != 0 {
		t.Fatalf("next = %v, skipped %d; want 600ms, 0", got, n)
	}
}

// The steady-state poll path of 100 coalesced sensors allocates almost
// nothing per reading.
func TestPoller_AllocsPerReading(t *testing.T) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	addr := mbslavetest.StartTCP(t, bank)
	n := 0
	p, err := NewPoller(config.Bus{Name: "gw", Protocol: "tcp", Address: addr}, adjacent("gw", 100, 0, 1, ms(1000)),
		func(r reading.Reading) {
			if r.Valid() {
				n++
			}
		}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := dial(p.bus)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	g := p.groups[0]
	allocs := testing.AllocsPerRun(50, func() {
		if err := p.pollGroup(context.Background(), cl, g, time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	if n != 51*100 {
		t.Fatalf("%d valid readings, want %d", n, 51*100)
	}
	perReading := allocs / 100
	t.Logf("%.0f allocs per poll of 100 sensors (%.3f per reading)", allocs, perReading)
	if perReading > 0.2 {
		t.Errorf("%.3f allocations per reading, want <= 0.2", perReading)
	}
}

// BenchmarkPollGroup is one poll of 100 coalesced sensors over Modbus TCP
// (one request, 100 readings decoded and emitted); allocs/op over 100 is
// the allocations per reading of the poll path.
func BenchmarkPollGroup(b *testing.B) {
	bank := mbslave.NewBank()
	bank.AddUnit(1)
	addr := mbslavetest.StartTCP(b, bank)
	p, err := NewPoller(config.Bus{Name: "gw", Protocol: "tcp", Address: addr}, adjacent("gw", 100, 0, 1, ms(1000)),
		func(reading.Reading) {}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	cl, err := dial(p.bus)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.close()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.pollGroup(context.Background(), cl, p.groups[0], time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/reading")
}
