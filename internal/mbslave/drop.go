package mbslave

// dropState counts the replies of one unit for DropEvery.
type dropState struct {
	every   int // drop every every-th reply; 0 = none
	seen    int // replies since DropEvery
	dropped int
}

// DropEvery makes unit id lose every n-th reply from now on, as a noisy
// line does: the n-th, 2n-th, ... request counted from this call is
// executed but its reply is never sent (so the client times out). Only
// normal replies are dropped, not exceptions or silence from a Fault.
// n <= 0 stops dropping.
func (b *Bank) DropEvery(id uint8, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drops == nil {
		b.drops = map[uint8]*dropState{}
	}
	d := b.drops[id]
	if d == nil {
		d = &dropState{}
		b.drops[id] = d
	}
	d.every, d.seen = max(n, 0), 0
}

// Dropped returns how many replies of unit id DropEvery has dropped.
func (b *Bank) Dropped(id uint8) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.drops[id]; d != nil {
		return d.dropped
	}
	return 0
}

// dropLocked reports whether the reply now built for unit id is lost.
// b.mu must be held.
func (b *Bank) dropLocked(id uint8) bool {
	d := b.drops[id]
	if d == nil || d.every == 0 {
		return false
	}
	d.seen++
	if d.seen%d.every != 0 {
		return false
	}
	d.dropped++
	return true
}
