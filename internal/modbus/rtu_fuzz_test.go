package modbus

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// Many reads of single registers (every reply the same length) across
// three slaves with random faults injected per request: duplicated
// replies 1-3 ms later, replies after the timeout (within the turnaround
// allowance), garbage before the reply, damaged CRCs, lost and split
// replies, on a pty and with a real line's timing. Every register holds
// a distinct value: a read that succeeds must return its own register,
// never the previous request's.
func TestRTU_RandomFaultsNeverMisattribute(t *testing.T) {
	for _, line := range []bool{false, true} {
		name := "pty"
		if line {
			name = "line"
		}
		t.Run(name, func(t *testing.T) {
			const (
				baud    = 38400
				timeout = 100 * time.Millisecond
				rounds  = 100
				units   = 3
				addrs   = 8
			)
			seed := uint64(20261201)
			if line {
				seed++
			}
			rng := rand.New(rand.NewPCG(seed, seed))
			bank := distinctBank(units, addrs)
			dev := mbslavetest.StartRTU(t, bank, baud)
			// Late replies come up to half the default turnaround after
			// the timeout; the bus allows three times that, so that a slave
			// goroutine oversleeping on a loaded host still lands inside.
			bus := rtuBus(dev, baud, timeout)
			bus.Turnaround = config.Duration(3 * DefaultTurnaround)
			cl := openRTU(t, bus, line)
			var ok, failed int
			faults := map[string]int{}
			for i := range rounds {
				id := byte(1 + rng.IntN(units))
				addr := uint16(rng.IntN(addrs))
				var f mbslave.Fault
				kind := "none"
				switch p := rng.Float64(); {
				case p < 0.15:
					kind, f.Duplicate = "duplicate", time.Millisecond+time.Duration(rng.Int64N(int64(2*time.Millisecond)))
				case p < 0.25:
					// Late: after the timeout, but drained within the turnaround.
					kind, f.Delay = "late", timeout+time.Duration(rng.Int64N(int64(DefaultTurnaround/2)))
				case p < 0.33:
					kind, f.Garbage = "garbage", []byte{byte(rng.Uint32()), id, 3, byte(rng.Uint32())}
				case p < 0.38:
					kind, f.BadCRC = "bad CRC", true
				case p < 0.43:
					kind, f.DropEvery = "lost", 1
				case p < 0.48:
					kind, f.Split = "split", time.Duration(rng.Int64N(int64(3*time.Millisecond)))
				}
				faults[kind]++
				bank.SetFault(id, f)
				data, err := cl.Read(id, TableHolding, addr, 1)
				if err != nil {
					failed++
					continue
				}
				if got, want := word(data), valueAt(id, addr); got != want {
					t.Errorf("round %d (%s): slave %d register %d read %d, want %d", i, kind, id, addr, got, want)
				}
				ok++
			}
			t.Logf("%d reads, %d failed; faults %v", ok, failed, faults)
			if ok < rounds/2 {
				t.Errorf("only %d of %d reads succeeded", ok, rounds)
			}
		})
	}
}
