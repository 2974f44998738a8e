package mbslave

import (
	"math/rand/v2"
	"time"
)

// Fault is the misbehaviour injected into one unit's replies. The zero
// Fault is a healthy unit. Tests set and clear faults at run time with
// Bank.SetFault.
type Fault struct {
	Delay          time.Duration // reply late by this much (after the request is executed)
	Silent         bool          // never reply (and do not execute the request), like a dead slave
	Exception      uint8         // reply with this exception code (e.g. 2, 6 = slave device busy) instead of executing
	ExceptionCount int           // if >0, only the next N requests get Exception, then normal replies
	BadCRC         bool          // RTU: corrupt the CRC of the reply
	WrongUnit      bool          // answer with another unit id (unit+1)
	Garbage        []byte        // send these bytes before the reply (RTU; on TCP it corrupts the stream)
	Split          time.Duration // send the reply in two pieces with this pause between
	Drop           bool          // TCP: close the connection instead of replying
	// Duplicate > 0 sends a second copy of the reply this long after the
	// first (in one piece), as a misbehaving repeater or gateway does.
	Duplicate time.Duration
	// DropEvery > 0 executes every request but sends no reply to every
	// DropEvery-th (counted from SetFault), as when the line loses it.
	DropEvery int
	// DropProb > 0 likewise loses each reply with this probability; the
	// sequence is reproducible from Seed (restarted by SetFault).
	DropProb float64
	Seed     uint64
	// WrongProtocol (TCP) sends protocol id 1 instead of 0 in the MBAP
	// header; LengthSkew (TCP) adds this to its length field (the bytes
	// sent are unchanged): a client must judge the stream out of step.
	WrongProtocol bool
	LengthSkew    int
}

// SetFault replaces the fault of unit id; Fault{} clears it. Setting a fault
// with ExceptionCount N restarts the count: the next N requests get the
// exception.
func (b *Bank) SetFault(id uint8, f Fault) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.unitLocked(id)
	u.fault = f
	u.excLeft = f.ExceptionCount
	u.answered = 0
	u.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9E3779B97F4A7C15))
}

// SetEcho makes the RTU line echo: every byte the master sends comes back
// to it at once, before any reply, as with a half-duplex RS-485 adapter
// that receives its own transmission. Off by default.
func (b *Bank) SetEcho(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.echo = on
}

// echoing reports whether SetEcho is on.
func (b *Bank) echoing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.echo
}
