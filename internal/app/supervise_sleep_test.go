package app

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/modbus"
)

// simBus replays a schedule of transactions [start, end) (end zero: never)
// at the time *now.
type simBus struct {
	tx      [][2]time.Time
	timeout time.Duration
	now     *time.Time
}

func (b *simBus) cur() time.Time {
	for _, x := range b.tx {
		if !b.now.Before(x[0]) && (x[1].IsZero() || b.now.Before(x[1])) {
			return x[0]
		}
	}
	return time.Time{}
}
func (b *simBus) Stalled(now time.Time) bool {
	s := b.cur()
	return !s.IsZero() && now.Sub(s) > modbus.StallFactor*b.timeout
}
func (b *simBus) Liveness() modbus.Liveness { return modbus.Liveness{InFlight: b.cur()} }
func (b *simBus) Timeout() time.Duration    { return b.timeout }
func (b *simBus) Interrupt()                {}

// TestSupervise_RandomBusesStallNeverSeenLate: 1 to 4 buses with timeouts
// from 5 ms to 4 s run random transactions, one of which may never end;
// stepping the supervisor by superviseSleep sees every stall at most
// SuperviseEvery after it begins (3 x the bus timeout into the transaction).
func TestSupervise_RandomBusesStallNeverSeenLate(t *testing.T) {
	t0 := time.Unix(1_764_403_200, 0)
	for seed := range uint64(400) {
		rng := rand.New(rand.NewPCG(seed, 9))
		now := t0
		var buses []stallable
		var stallAt []time.Time
		nb := 1 + rng.IntN(4)
		for i := 0; i < nb; i++ {
			tos := []time.Duration{5 * time.Millisecond, 30 * time.Millisecond, 100 * time.Millisecond, 333 * time.Millisecond, time.Second, 1700 * time.Millisecond, 4 * time.Second}
			b := &simBus{timeout: tos[rng.IntN(len(tos))], now: &now}
			at := t0.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
			var stall time.Time
			for k := 0; k < 200; k++ {
				gap := time.Duration(rng.IntN(int(b.timeout/time.Microsecond)*4+1)) * time.Microsecond
				at = at.Add(gap)
				if rng.IntN(60) == 0 && stall.IsZero() {
					b.tx = append(b.tx, [2]time.Time{at, {}})
					stall = at.Add(modbus.StallFactor * b.timeout)
					break
				}
				d := time.Duration(rng.IntN(int(b.timeout/time.Microsecond)*3+1)) * time.Microsecond
				b.tx = append(b.tx, [2]time.Time{at, at.Add(d)})
				at = at.Add(d)
			}
			buses = append(buses, b)
			stallAt = append(stallAt, stall)
		}
		seen := make([]bool, nb)
		now = t0.Add(SuperviseEvery)
		end := t0.Add(time.Minute)
		for _, s := range stallAt {
			if s.After(end) {
				end = s.Add(10 * time.Second)
			}
		}
		for now.Before(end) {
			for i, b := range buses {
				if !seen[i] && b.Stalled(now) {
					seen[i] = true
					if late := now.Sub(stallAt[i]); late > SuperviseEvery {
						t.Fatalf("seed %d bus %d (timeout %v): stall at %v seen %v late", seed, i, b.Timeout(), stallAt[i].Sub(t0), late)
					}
				}
			}
			now = now.Add(superviseSleep(now, buses))
		}
		for i := range buses {
			if !stallAt[i].IsZero() && !seen[i] {
				t.Fatalf("seed %d: stall of bus %d never seen", seed, i)
			}
		}
	}
}
