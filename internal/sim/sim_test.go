package sim_test

import (
	"bytes"
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/goburrow/modbus"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/decode"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/sim"
)

// words returns n registers of table at addr of unit 1.
func words(b *mbslave.Bank, table string, addr, n int) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		if table == "input" {
			out[i] = b.Input(sim.Unit, uint16(addr+i))
		} else {
			out[i] = b.Holding(sim.Unit, uint16(addr+i))
		}
	}
	return out
}

func TestSiteDeterministic(t *testing.T) {
	a := sim.New(sim.Config{Seed: 7}, nil)
	b := sim.New(sim.Config{Seed: 7}, nil)
	c := sim.New(sim.Config{Seed: 8}, nil)
	differ := false
	for i := range 200 {
		at := time.Duration(i) * 250 * time.Millisecond
		a.Step(at)
		b.Step(at)
		c.Step(at)
		if a.Values() != b.Values() {
			t.Fatalf("step %d: seed 7 twice gave %+v and %+v", i, a.Values(), b.Values())
		}
		if got, want := words(a.Bank(), "holding", 0, 12), words(b.Bank(), "holding", 0, 12); !equal(got, want) {
			t.Fatalf("step %d: holding registers differ: %v vs %v", i, got, want)
		}
		if a.Values() != c.Values() {
			differ = true
		}
	}
	if !differ {
		t.Error("seeds 7 and 8 gave the same 200 steps")
	}
}

func equal(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSiteRangesAndExcursion(t *testing.T) {
	s := sim.New(sim.Config{Seed: 1, ExcursionEvery: 60 * time.Second}, nil)
	var peak, minCH4, maxCH4 = 0.0, 10.0, 0.0
	for ms := 0; ms <= 125_000; ms += 250 {
		at := time.Duration(ms) * time.Millisecond
		s.Step(at)
		v := s.Values()
		inExcursion := (at >= 60*time.Second && at < 70*time.Second) || (at >= 120*time.Second && at < 130*time.Second)
		if v.Excursion != inExcursion {
			t.Fatalf("t=%v: Excursion = %v, want %v", at, v.Excursion, inExcursion)
		}
		if inExcursion {
			peak = math.Max(peak, v.Methane)
			// Plateau: 63 s to 67 s at the peak, above the 1.5 %CH4 cut-off.
			if at >= 63*time.Second && at < 67*time.Second && v.Methane != 1.6 {
				t.Fatalf("t=%v: methane %v on the plateau, want 1.6", at, v.Methane)
			}
		} else {
			minCH4, maxCH4 = math.Min(minCH4, v.Methane), math.Max(maxCH4, v.Methane)
		}
		if v.CO < 0 || v.CO > 10 || v.O2 < 20.7 || v.O2 > 21.1 || v.WaterLevel < 2.1 || v.WaterLevel > 2.9 ||
			v.Pressure < 0.7 || v.Pressure > 0.9 || !v.FanRunning {
			t.Fatalf("t=%v: implausible values %+v", at, v)
		}
	}
	if peak != 1.6 {
		t.Errorf("excursion peak %v, want 1.6", peak)
	}
	if minCH4 < 0.2 || maxCH4 > 0.6 || maxCH4-minCH4 < 0.02 {
		t.Errorf("methane outside excursions spans %v..%v, want noisy within 0.20..0.60", minCH4, maxCH4)
	}
	if got := s.Bank().Holding(sim.Unit, 0); got != uint16(math.Round(s.Values().Methane*100)) {
		t.Errorf("holding 0 = %d, want methane×100 = %v", got, s.Values().Methane*100)
	}
}

func TestSiteNoExcursionWhenOff(t *testing.T) {
	s := sim.New(sim.Config{Seed: 1}, nil)
	for ms := 0; ms <= 200_000; ms += 500 {
		s.Step(time.Duration(ms) * time.Millisecond)
		if v := s.Values(); v.Excursion || v.Methane > 0.6 {
			t.Fatalf("t=%dms: %+v with excursions off", ms, v)
		}
	}
}

// TestDemoConfigMatchesMap checks configs/demo.yaml against the register
// map, and decodes the site's registers with the agent's own decoder.
func TestDemoConfigMatchesMap(t *testing.T) {
	l, err := config.Load("../../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := sim.New(sim.Config{Seed: 3}, nil)
	v := s.Values()
	want := map[string]float64{
		"CH4-101": v.Methane, "CO-101": v.CO, "O2-101": v.O2,
		"LVL-201": v.WaterLevel, "PT-301": v.Pressure, "FAN-1-RUNNING": 1,
	}
	points := map[string]sim.Point{}
	for _, p := range sim.RegisterMap() {
		points[p.Sensor] = p
	}
	for _, sn := range l.Config.Sensors {
		p, ok := points[sn.ID]
		if !ok {
			t.Errorf("demo sensor %s is not in the simulator's register map", sn.ID)
			continue
		}
		order := "" // byte order matters for 32-bit formats only
		if sn.Format == "float32" {
			order = sn.ByteOrder
			if order == "" {
				order = "ABCD"
			}
		}
		if sn.Slave != int(p.Slave) || sn.Table != p.Table || sn.Address != int(p.Address) ||
			(sn.Format != p.Format && !(sn.Format == "" && p.Format == "bool")) || order != p.ByteOrder ||
			sn.ScaleOr1() != p.Scale || sn.Unit != p.Unit {
			t.Errorf("demo sensor %s = slave %d %s %d %s %s ×%v %q; simulator has %+v",
				sn.ID, sn.Slave, sn.Table, sn.Address, sn.Format, sn.ByteOrder, sn.ScaleOr1(), sn.Unit, p)
			continue
		}
		spec, err := decode.FromSensor(sn)
		if err != nil {
			t.Fatalf("%s: %v", sn.ID, err)
		}
		var got float64
		switch sn.Table {
		case "discrete":
			got, err = spec.Bit(s.Bank().Discrete(sim.Unit, p.Address))
		default:
			n, _ := decode.Words(p.Format)
			got, err = spec.Registers(words(s.Bank(), sn.Table, int(p.Address), n))
		}
		if err != nil {
			t.Errorf("%s: decode: %v", sn.ID, err)
		} else if tol := tolerance(sn.Format, want[sn.ID]); math.Abs(got-want[sn.ID]) > tol {
			t.Errorf("%s: agent decodes %v, simulator wrote %v", sn.ID, got, want[sn.ID])
		}
	}
}

// tolerance is how far a decoded value may be from what the simulator
// wrote: a float32 carries about 7 significant digits (the decoder rounds
// to them), an integer register none.
func tolerance(format string, v float64) float64 {
	if format == "float32" {
		return 1e-6 * math.Max(1, math.Abs(v))
	}
	return 1e-9
}

// syncBuffer is a bytes.Buffer safe for the subscriber's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls out until it contains want (10 s at most).
func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q; got:\n%s", want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSimServesModbusAndBroker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var banner syncBuffer
	s, err := sim.Start(ctx, sim.Options{TCP: "127.0.0.1:0", Broker: "127.0.0.1:0", Seed: 5, Out: &banner})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(banner.String(), "Modbus TCP slave: "+s.TCPAddr) {
		t.Errorf("banner does not name the TCP address %s:\n%s", s.TCPAddr, banner.String())
	}

	// A real Modbus client reads a plausible methane value and trips the breaker.
	h := modbus.NewTCPClientHandler(s.TCPAddr)
	h.SlaveId, h.Timeout = sim.Unit, 5*time.Second
	defer h.Close()
	mc := modbus.NewClient(h)
	regs, err := mc.ReadHoldingRegisters(0, 3)
	if err != nil {
		t.Fatal(err)
	}
	ch4 := float64(uint16(regs[0])<<8|uint16(regs[1])) / 100
	o2 := float64(uint16(regs[4])<<8|uint16(regs[5])) / 100
	if ch4 < 0.2 || ch4 > 0.6 || o2 < 20.7 || o2 > 21.1 {
		t.Errorf("read CH4 %v %%, O2 %v %%vol; want 0.2..0.6 and about 20.9", ch4, o2)
	}
	if _, err := mc.WriteSingleCoil(sim.BreakerCoil, 0xFF00); err != nil {
		t.Fatal(err)
	}
	if !s.Site.Bank().Coil(sim.Unit, sim.BreakerCoil) {
		t.Error("breaker coil not set after FC05")
	}

	// The subscriber prints what a client publishes to the embedded broker.
	var out syncBuffer
	sub, err := sim.Start(ctx, sim.Options{Subscribe: "tcp://" + s.BrokerAddr, Topic: "hazmon/#", Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + s.BrokerAddr).SetClientID("sim-test-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer pub.Disconnect(250)
	telemetry := `{"v":1,"agent":"gw-01","site":"site-0001","seq":5,"historical":false,"readings":[` +
		`{"sensor":"CH4-101","type":"methane","ts":1700000000000,"value":0.52,"unit":"%CH4","status":"normal"},` +
		`{"sensor":"CO-101","type":"co","ts":1700000000000,"value":null,"unit":"ppm","status":"fault","error":"timeout"}]}`
	if tok := pub.Publish("hazmon/v1/site-0001/gw-01/telemetry", 1, false, telemetry); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	waitFor(t, &out, " telemetry seq=5 CH4-101=0.52%CH4 normal CO-101=null fault(timeout)\n")

	cancel()
	for _, x := range []*sim.Sim{sub, s} {
		done := make(chan error, 1)
		go func() { done <- x.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Wait = %v, want nil after cancel", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("simulator did not stop within 15s of cancel")
		}
	}
}

func TestSimDuration(t *testing.T) {
	var out syncBuffer
	s, err := sim.Start(context.Background(), sim.Options{Duration: 300 * time.Millisecond, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Wait = %v, want nil after --duration", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("simulator with a 300ms duration still running after 15s")
	}
}

func TestSimRTU(t *testing.T) {
	slaveEnd, clientEnd := mbslavetest.PtyPair(t)
	var out syncBuffer
	s, err := sim.Start(context.Background(), sim.Options{RTU: slaveEnd, Baud: 19200, Parity: "N", Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	h := modbus.NewRTUClientHandler(clientEnd)
	h.BaudRate, h.DataBits, h.Parity, h.StopBits, h.SlaveId, h.Timeout = 19200, 8, "N", 1, sim.Unit, 5*time.Second
	defer h.Close()
	regs, err := modbus.NewClient(h).ReadInputRegisters(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	mpa := math.Float32frombits(uint32(regs[2])<<24 | uint32(regs[3])<<16 | uint32(regs[0])<<8 | uint32(regs[1]))
	if mpa < 0.7 || mpa > 0.9 {
		t.Errorf("pressure over RTU (CDAB) = %v MPa, want about 0.8", mpa)
	}
	s.Stop()
	if err := s.Wait(); err != nil {
		t.Errorf("Wait = %v", err)
	}
}
