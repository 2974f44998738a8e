// Package sim is a simulated site for demos and tests: a Modbus slave bank
// (unit 1) whose registers follow a small, seeded model of a coal face.
//
// Register map of unit 1 (0-based protocol addresses; configs/demo.yaml
// matches it, and TestDemoConfigMatchesMap checks that):
//
//	table     address  sensor         type         format   order  scale  unit  model
//	holding   0        CH4-101        methane      uint16   -      0.01   %CH4  0.20-0.60, noise + slow drift; excursion to 1.60
//	holding   1        CO-101         co           uint16   -      1      ppm   about 3 ppm, noise
//	holding   2        O2-101         o2           uint16   -      0.01   %vol  about 20.9
//	holding   10-11    LVL-201        water_level  float32  ABCD   1      m     2.5 m, slow 10 min swing of 0.3 m
//	input     0-1      PT-301         pressure     float32  CDAB   1      MPa   about 0.80 MPa
//	discrete  0        FAN-1-RUNNING  digital      bool     -      -      -     true (local fan running)
//	coil      100      breaker        output       bool     -      -      -     written by the agent (on = cut power)
//
// The methane excursion (every ExcursionEvery, first one at t=ExcursionEvery
// after start) ramps up for 3/10 of its length, holds the peak for 4/10 and
// ramps down for 3/10, so an agent sampling every second sees the cut-off
// limit (1.5 %CH4 at a coal face, Coal Mine Safety Regulations 2022) crossed
// for several samples and then the restore.
package sim

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
)

// Unit is the Modbus unit id of the simulated sensors.
const Unit uint8 = 1

// BreakerCoil is the coil address of the breaker the agent writes.
const BreakerCoil uint16 = 100

// Point is one entry of the simulated register map, named with the same
// fields as a sensor in the agent config (config.Sensor).
type Point struct {
	Sensor    string  // sensor id, e.g. "CH4-101"
	Type      string  // sensor type, e.g. "methane"
	Slave     uint8   // Modbus unit id
	Table     string  // holding|input|coil|discrete
	Address   uint16  // 0-based protocol address
	Format    string  // uint16|float32|bool
	ByteOrder string  // ABCD|CDAB for float32, "" otherwise
	Scale     float64 // engineering = raw × Scale (1 for float32 and bool)
	Unit      string  // engineering unit
}

// RegisterMap returns the simulated register map (a fresh slice each call).
func RegisterMap() []Point {
	return []Point{
		{Sensor: "CH4-101", Type: "methane", Slave: Unit, Table: "holding", Address: 0, Format: "uint16", Scale: 0.01, Unit: "%CH4"},
		{Sensor: "CO-101", Type: "co", Slave: Unit, Table: "holding", Address: 1, Format: "uint16", Scale: 1, Unit: "ppm"},
		{Sensor: "O2-101", Type: "o2", Slave: Unit, Table: "holding", Address: 2, Format: "uint16", Scale: 0.01, Unit: "%vol"},
		{Sensor: "LVL-201", Type: "water_level", Slave: Unit, Table: "holding", Address: 10, Format: "float32", ByteOrder: "ABCD", Scale: 1, Unit: "m"},
		{Sensor: "PT-301", Type: "pressure", Slave: Unit, Table: "input", Address: 0, Format: "float32", ByteOrder: "CDAB", Scale: 1, Unit: "MPa"},
		{Sensor: "FAN-1-RUNNING", Type: "digital", Slave: Unit, Table: "discrete", Address: 0, Format: "bool", Scale: 1},
		{Sensor: "breaker", Type: "output", Slave: Unit, Table: "coil", Address: BreakerCoil, Format: "bool", Scale: 1},
	}
}

// Config tunes the simulation. The zero Config is valid: seed 0, a tick of
// DefaultTick and no excursion.
type Config struct {
	Seed            uint64        // seed of the noise; the same seed and steps give the same values
	Tick            time.Duration // how often Run updates the registers; 0 = DefaultTick
	ExcursionEvery  time.Duration // period of the methane excursion; 0 = none
	ExcursionLength time.Duration // length of one excursion; 0 = DefaultExcursionLength; at most half of ExcursionEvery
	ExcursionPeak   float64       // methane at the excursion's peak, %CH4; 0 = DefaultExcursionPeak
}

// Defaults of Config.
const (
	DefaultTick            = 250 * time.Millisecond
	DefaultExcursionLength = 10 * time.Second
	DefaultExcursionPeak   = 1.6 // %CH4: above the 1.5 %CH4 coal-face cut-off
)

// Values are the engineering values last written to the registers.
type Values struct {
	Methane    float64 // %CH4 (as encoded: a multiple of 0.01)
	CO         float64 // ppm (integer)
	O2         float64 // %vol (a multiple of 0.01)
	WaterLevel float64 // m (float32 precision)
	Pressure   float64 // MPa (float32 precision)
	FanRunning bool
	Breaker    bool // coil 100 as last seen (written by the agent)
	Excursion  bool // a methane excursion is under way
}

// Site is the simulated site: a Bank and the model that updates it.
type Site struct {
	bank *mbslave.Bank
	cfg  Config
	log  *slog.Logger

	mu      sync.Mutex
	rng     *rand.Rand
	drift   float64 // methane drift, %CH4, kept in 0.25..0.50
	values  Values
	stepped bool
}

// New returns a Site with its registers set to the values at t=0. log may
// be nil (no logging).
func New(cfg Config, log *slog.Logger) *Site {
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.ExcursionLength <= 0 {
		cfg.ExcursionLength = DefaultExcursionLength
	}
	if cfg.ExcursionEvery > 0 && cfg.ExcursionLength > cfg.ExcursionEvery/2 {
		cfg.ExcursionLength = cfg.ExcursionEvery / 2
	}
	if cfg.ExcursionPeak <= 0 {
		cfg.ExcursionPeak = DefaultExcursionPeak
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Site{
		bank:  mbslave.NewBank(),
		cfg:   cfg,
		log:   log,
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x6861_7a6d_6f6e)), // second word: "hazmon"
		drift: 0.35,
	}
	s.bank.AddUnit(Unit)
	s.Step(0)
	return s
}

// Bank returns the Modbus bank the site writes; serve it with
// mbslave.ServeTCP or mbslave.ServeRTU.
func (s *Site) Bank() *mbslave.Bank { return s.bank }

// Config returns the site's configuration with defaults applied.
func (s *Site) Config() Config { return s.cfg }

// Values returns the engineering values last written.
func (s *Site) Values() Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values
}

// Run updates the registers every Tick until ctx is done; it then returns
// nil. Time is measured from the call, so the first excursion starts
// ExcursionEvery after Run starts.
func (s *Site) Run(ctx context.Context) error {
	start := time.Now()
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.Step(now.Sub(start))
		}
	}
}

// ExcursionLevel returns how far into an excursion the site is at elapsed
// time t since start: 0 outside, rising to 1 at the plateau. Excursions
// start at k×ExcursionEvery for k >= 1.
func (s *Site) ExcursionLevel(t time.Duration) float64 {
	level, _ := s.excursion(t)
	return level
}

// excursion returns the excursion level at t and whether t is inside an
// excursion window (the level is 0 at its very start).
func (s *Site) excursion(t time.Duration) (level float64, active bool) {
	every, length := s.cfg.ExcursionEvery, s.cfg.ExcursionLength
	if every <= 0 || t < every {
		return 0, false
	}
	in := float64((t-every)%every) / float64(length)
	switch {
	case in >= 1:
		return 0, false
	case in < 0.3:
		return in / 0.3, true
	case in < 0.7:
		return 1, true
	default:
		return (1 - in) / 0.3, true
	}
}

// Step advances the model to elapsed time t since start and writes the
// registers. Steps with the same seed and the same sequence of t give the
// same values.
func (s *Site) Step(t time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rng
	// Methane: slow bounded random-walk drift plus noise, in 0.20..0.60.
	s.drift = clamp(s.drift+r.NormFloat64()*0.005, 0.25, 0.50)
	ch4 := clamp(s.drift+r.NormFloat64()*0.02, 0.20, 0.60)
	ex, active := s.excursion(t)
	if ex > 0 {
		ch4 += (s.cfg.ExcursionPeak - ch4) * ex
	}
	co := math.Max(0, math.Round(3+r.NormFloat64()*0.7))
	o2 := clamp(20.9+r.NormFloat64()*0.03, 20.7, 21.1)
	level := 2.5 + 0.3*math.Sin(2*math.Pi*t.Seconds()/600) + r.NormFloat64()*0.005
	pressure := 0.80 + r.NormFloat64()*0.01

	ch4Raw := uint16(math.Round(ch4 * 100))
	o2Raw := uint16(math.Round(o2 * 100))
	s.bank.SetHolding(Unit, 0, ch4Raw, uint16(co), o2Raw)
	s.bank.SetHolding(Unit, 10, Float32ABCD(float32(level))...)
	s.bank.SetInput(Unit, 0, Float32CDAB(float32(pressure))...)
	s.bank.SetDiscrete(Unit, 0, true)

	breaker := s.bank.Coil(Unit, BreakerCoil)
	if s.stepped && breaker != s.values.Breaker {
		s.log.Info("breaker coil written by the agent", "coil", BreakerCoil, "on", breaker)
	}
	if s.stepped && active != s.values.Excursion {
		if active {
			s.log.Info("methane excursion starts", "peak_pct_ch4", s.cfg.ExcursionPeak, "length", s.cfg.ExcursionLength)
		} else {
			s.log.Info("methane excursion ends")
		}
	}
	s.values = Values{
		Methane:    float64(ch4Raw) / 100,
		CO:         co,
		O2:         float64(o2Raw) / 100,
		WaterLevel: float64(float32(level)),
		Pressure:   float64(float32(pressure)),
		FanRunning: true,
		Breaker:    breaker,
		Excursion:  active,
	}
	s.stepped = true
}

func clamp(v, lo, hi float64) float64 { return math.Min(hi, math.Max(lo, v)) }

// Float32ABCD returns the two registers of f in ABCD order (big-endian,
// high word first).
func Float32ABCD(f float32) []uint16 {
	b := math.Float32bits(f)
	return []uint16{uint16(b >> 16), uint16(b)}
}

// Float32CDAB returns the two registers of f in CDAB order (word-swapped:
// low word first).
func Float32CDAB(f float32) []uint16 {
	b := math.Float32bits(f)
	return []uint16{uint16(b), uint16(b >> 16)}
}
