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
			var ok, failed, void int
			faults := map[string]int{}
			// A stray frame of this round or the one before may land in
			// this read only if the slave overslept the timing it played
			// by more than that fault's margin (Bank.Slip): such a round
			// is void, not a misattribution by the master.
			var prevSlip, prevBound time.Duration = 0, time.Hour
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
				bound := 2 * time.Millisecond
				switch kind {
				case "duplicate":
					bound = SettleTime(baud) - f.Duplicate
				case "late":
					bound = time.Duration(bus.Turnaround) - (f.Delay - timeout)
				}
				bank.SetFault(id, f)
				bank.ResetSlip()
				data, err := cl.Read(id, TableHolding, addr, 1)
				slip := bank.Slip()
				worst, margin := max(slip, prevSlip), min(bound, prevBound)
				prevSlip, prevBound = slip, bound
				if err != nil {
					failed++
					continue
				}
				if got, want := word(data), valueAt(id, addr); got != want {
					if worst > margin {
						t.Logf("round %d (%s) void: slave %d register %d read %d, want %d, but the slave overslept by %v (margin %v)", i, kind, id, addr, got, want, worst, margin)
						void++
						continue
					}
					t.Errorf("round %d (%s): slave %d register %d read %d, want %d (slave's slip %v, margin %v)", i, kind, id, addr, got, want, worst, margin)
				}
				ok++
			}
			t.Logf("%d reads, %d failed, %d void; faults %v", ok, failed, void, faults)
			if ok < rounds/2 {
				t.Errorf("only %d of %d reads succeeded", ok, rounds)
			}
		})
	}
}
