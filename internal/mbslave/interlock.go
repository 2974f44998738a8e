package mbslave

// coilKey names one coil of one unit.
type coilKey struct {
	unit uint8
	addr uint16
}

// HoldCoil makes the unit behave like a PLC whose own logic holds a coil
// (an interlock, an emergency stop): a client's FC05 write is executed and
// acknowledged as usual, then the PLC writes the coil back to on, so a
// read-back right after the write already shows the held value. ReleaseCoil
// ends it.
func (b *Bank) HoldCoil(id uint8, addr uint16, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held == nil {
		b.held = map[coilKey]bool{}
	}
	b.held[coilKey{id, addr}] = on
	if u := b.units[id]; u != nil {
		u.coils[addr] = on
	}
}

// ReleaseCoil ends HoldCoil: the coil keeps its value until written.
func (b *Bank) ReleaseCoil(id uint8, addr uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.held, coilKey{id, addr})
}

// applyHeldLocked re-applies held coils after a request executed.
func (b *Bank) applyHeldLocked(id uint8, u *unit) {
	for k, on := range b.held {
		if k.unit == id {
			u.coils[k.addr] = on
		}
	}
}
