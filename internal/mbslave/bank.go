// Package mbslave is a small Modbus slave (server) for tests, benchmarks and
// the site simulator: Modbus TCP and Modbus RTU, function codes 01, 02, 03,
// 04, 05, 06, 15 and 16, exception codes 1, 2 and 3, and per-unit fault
// injection (late, silent, exception, bad CRC, wrong unit id, garbage,
// split, duplicated and lost replies, corrupt MBAP headers), plus an
// echoing RS-485 adapter on the line (Bank.SetEcho).
//
// A Bank holds the four tables (coils, discrete inputs, holding registers,
// input registers) of every unit id; ServeTCP and ServeRTU answer requests
// from a Bank. Addresses are 0-based protocol addresses.
package mbslave

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
)

// Function codes served.
const (
	FuncReadCoils              = 0x01
	FuncReadDiscreteInputs     = 0x02
	FuncReadHoldingRegisters   = 0x03
	FuncReadInputRegisters     = 0x04
	FuncWriteSingleCoil        = 0x05
	FuncWriteSingleRegister    = 0x06
	FuncWriteMultipleCoils     = 0x0F
	FuncWriteMultipleRegisters = 0x10
)

// Exception codes (Modbus Application Protocol V1.1b3, section 7).
const (
	ExIllegalFunction         = 0x01
	ExIllegalDataAddress      = 0x02
	ExIllegalDataValue        = 0x03
	ExSlaveDeviceFailure      = 0x04
	ExSlaveDeviceBusy         = 0x06
	ExGatewayTargetNoResponse = 0x0B // TCP: request for a unit id this server does not have
)

// Quantity limits per request (Modbus Application Protocol V1.1b3).
const (
	MaxReadBits       = 2000 // FC01/FC02
	MaxReadRegisters  = 125  // FC03/FC04
	MaxWriteBits      = 1968 // FC15
	MaxWriteRegisters = 123  // FC16
)

// DefaultSize is the number of addresses (0..DefaultSize-1) each table of a
// unit answers; requests beyond it get exception 2. Change it with SetSize.
const DefaultSize = 10000

// Table names one of the four Modbus data tables of a unit.
type Table uint8

// The four tables.
const (
	Coils Table = iota
	DiscreteInputs
	HoldingRegisters
	InputRegisters
)

// String returns the field name of t ("coil", "discrete", "holding", "input").
func (t Table) String() string {
	switch t {
	case Coils:
		return "coil"
	case DiscreteInputs:
		return "discrete"
	case HoldingRegisters:
		return "holding"
	case InputRegisters:
		return "input"
	}
	return fmt.Sprintf("table(%d)", uint8(t))
}

// span is a half-open address range [from, to).
type span struct{ from, to int }

// unit is the state of one unit id. Storage always covers the whole 16-bit
// address space; size limits what the unit answers.
type unit struct {
	on       bool // added: answers requests
	size     int
	coils    []bool
	discrete []bool
	holding  []uint16
	input    []uint16
	invalid  [4][]span
	fault    Fault
	excLeft  int        // remaining exceptions when fault.ExceptionCount > 0
	answered int        // requests executed since SetFault (fault.DropEvery)
	rng      *rand.Rand // fault.DropProb, seeded by SetFault
}

func newUnit() *unit {
	return &unit{
		size:     DefaultSize,
		coils:    make([]bool, 1<<16),
		discrete: make([]bool, 1<<16),
		holding:  make([]uint16, 1<<16),
		input:    make([]uint16, 1<<16),
	}
}

// Bank holds the registers of all unit ids and their faults. It is safe for
// concurrent use: servers read it while tests and the simulator write it.
type Bank struct {
	mu       sync.Mutex
	units    map[uint8]*unit
	requests map[uint8]int
	coilLog  []CoilWrite
	drops    map[uint8]*dropState // DropEvery (drop.go)
	echo     bool
	held     map[coilKey]bool // HoldCoil (interlock.go)
	slip     slipMeter        // Slip (slip.go)
}

// CoilWrite is one coil written by a client (FC05), as recorded by the Bank.
type CoilWrite struct {
	Unit uint8
	Addr uint16
	On   bool
}

// CoilWrites returns every FC05 coil write received so far, in order, so a
// test can assert what a client wrote (e.g. that a breaker was never cut).
func (b *Bank) CoilWrites() []CoilWrite {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]CoilWrite(nil), b.coilLog...)
}

// NewBank returns an empty Bank with no units.
func NewBank() *Bank {
	return &Bank{units: make(map[uint8]*unit), requests: make(map[uint8]int)}
}

// unitLocked returns unit id's state, creating it (not yet answering) if needed.
// b.mu must be held.
func (b *Bank) unitLocked(id uint8) *unit {
	u := b.units[id]
	if u == nil {
		u = newUnit()
		b.units[id] = u
	}
	return u
}

// AddUnit makes unit id answer requests. Only added units answer; requests
// for other unit ids get no reply on RTU and exception 0x0B (gateway target
// device failed to respond) on TCP. The Set* methods also add the unit.
func (b *Bank) AddUnit(id uint8) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unitLocked(id).on = true
}

// RemoveUnit makes unit id stop answering (its values are kept).
func (b *Bank) RemoveUnit(id uint8) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u := b.units[id]; u != nil {
		u.on = false
	}
}

// SetSize sets how many addresses (0..n-1) each table of unit id answers;
// 1 <= n <= 65536. Requests reaching beyond get exception 2.
func (b *Bank) SetSize(id uint8, n int) {
	if n < 1 || n > 1<<16 {
		panic(fmt.Sprintf("mbslave: SetSize(%d, %d): size must be 1..65536", id, n))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.unitLocked(id)
	u.on = true
	u.size = n
}

// SetInvalid marks addresses from..from+count-1 of table t of unit id as
// invalid: a request touching any of them gets exception 2 (illegal data
// address), as real devices do for gaps in their register map.
func (b *Bank) SetInvalid(id uint8, t Table, from uint16, count int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.unitLocked(id)
	u.on = true
	u.invalid[t] = append(u.invalid[t], span{int(from), int(from) + count})
}

// checkSet panics when a test or the simulator writes outside the unit's
// size: such a value could never be read back, which is a programming error.
func checkSet(u *unit, id uint8, t Table, addr uint16, n int) {
	if int(addr)+n > u.size {
		panic(fmt.Sprintf("mbslave: set %s %d..%d of unit %d: outside table size %d (call SetSize)",
			t, addr, int(addr)+n-1, id, u.size))
	}
}

// SetHolding writes words to holding registers addr, addr+1, ... of unit id
// (and adds the unit). It panics if the range is outside the unit's size.
func (b *Bank) SetHolding(id uint8, addr uint16, words ...uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.unitLocked(id)
	u.on = true
	checkSet(u, id, HoldingRegisters, addr, len(words))
	copy(u.holding[addr:], words)
}

// SetInput writes words to input registers addr, addr+1, ... of unit id
// (and adds the unit). It panics if the range is outside the unit's size.
func (b *Bank) SetInput(id uint8, addr uint16, words ...uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.unitLocked(id)
	u.on = true
	checkSet(u, id, InputRegisters, addr, len(words))
	copy(u.input[addr:], words)
}

// SetCoil sets coil addr of unit id (and adds the unit).
func (b *Bank) SetCoil(id uint8, addr uint16, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.unitLocked(id)
	u.on = true
	checkSet(u, id, Coils, addr, 1)
	u.coils[addr] = on
}

// SetDiscrete sets discrete input addr of unit id (and adds the unit).
func (b *Bank) SetDiscrete(id uint8, addr uint16, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.unitLocked(id)
	u.on = true
	checkSet(u, id, DiscreteInputs, addr, 1)
	u.discrete[addr] = on
}

// Holding returns holding register addr of unit id (0 if never set).
func (b *Bank) Holding(id uint8, addr uint16) uint16 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u := b.units[id]; u != nil {
		return u.holding[addr]
	}
	return 0
}

// Input returns input register addr of unit id (0 if never set).
func (b *Bank) Input(id uint8, addr uint16) uint16 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u := b.units[id]; u != nil {
		return u.input[addr]
	}
	return 0
}

// Coil returns coil addr of unit id (false if never set).
func (b *Bank) Coil(id uint8, addr uint16) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u := b.units[id]; u != nil {
		return u.coils[addr]
	}
	return false
}

// Discrete returns discrete input addr of unit id (false if never set).
func (b *Bank) Discrete(id uint8, addr uint16) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u := b.units[id]; u != nil {
		return u.discrete[addr]
	}
	return false
}

// Requests returns how many well-formed requests (valid MBAP header or CRC)
// addressed to unit id were received, whether or not the unit answered.
func (b *Bank) Requests(id uint8) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests[id]
}

// process counts and executes one request PDU for unit id. It returns the
// reply PDU (possibly an exception), the unit's fault, and whether the unit
// exists and should reply at all (false: stay silent, or 0x0B on TCP when
// known is false).
func (b *Bank) process(id uint8, pdu []byte) (reply []byte, f Fault, known, answer bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests[id]++
	u := b.units[id]
	if u == nil || !u.on {
		return nil, Fault{}, false, false
	}
	f = u.fault
	if f.Silent {
		return nil, f, true, false
	}
	if f.Exception != 0 {
		if f.ExceptionCount <= 0 {
			return exception(pdu[0], f.Exception), f, true, true
		}
		if u.excLeft > 0 {
			u.excLeft--
			return exception(pdu[0], f.Exception), f, true, true
		}
	}
	reply = u.execute(pdu)
	b.applyHeldLocked(id, u)
	if pdu[0] == FuncWriteSingleCoil && len(reply) == 5 && reply[0] == FuncWriteSingleCoil {
		b.coilLog = append(b.coilLog, CoilWrite{Unit: id, Addr: binary.BigEndian.Uint16(pdu[1:]), On: binary.BigEndian.Uint16(pdu[3:]) == 0xFF00})
	}
	u.answered++
	if f.DropEvery > 0 && u.answered%f.DropEvery == 0 || f.DropProb > 0 && u.rng.Float64() < f.DropProb {
		return nil, f, true, false // executed, but the reply is lost
	}
	return reply, f, true, !b.dropLocked(id)
}

// broadcast executes a write request addressed to unit 0 on every added
// unit; broadcasts get no reply.
func (b *Bank) broadcast(pdu []byte) {
	switch pdu[0] {
	case FuncWriteSingleCoil, FuncWriteSingleRegister, FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
	default:
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests[0]++
	for _, u := range b.units {
		if u.on && !u.fault.Silent {
			u.execute(pdu)
		}
	}
}
