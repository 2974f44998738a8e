package safety

import (
	"sync"
	"sync/atomic"

	"github.com/hazmon/hazmon/internal/reading"
)

// Outbox capacities: what the Core can hand on while the goroutine that
// drains the Outbox (logging, buffering) is slow. Alarms and events have
// their own queue, so a flood of readings never pushes one out.
const (
	DefaultOutboxReadings = 16384
	DefaultOutboxUrgent   = 4096
)

// ItemKind says what an Outbox item carries.
type ItemKind uint8

// Item kinds.
const (
	ItemReading ItemKind = iota // an evaluated reading (its Status set by the rules)
	ItemAlarm                   // an alarm raised or cleared
	ItemEvent                   // something the agent did (output restore, test, calibration)
)

// Item is one thing the Core hands on.
type Item struct {
	Kind    ItemKind
	Reading reading.Reading
	Alarm   Alarm
	Event   Event
}

// Outbox is the Core's non-blocking way out. The Core puts; one goroutine
// (the app's recorder) waits on Notify and takes. A full queue drops the
// item and counts it (Lost), never waits.
type Outbox struct {
	mu       sync.Mutex
	urgent   ring[Item]
	readings ring[Item]
	notify   chan struct{}

	lostReadings atomic.Uint64
	lostUrgent   atomic.Uint64
}

func newOutbox(readings, urgent int) *Outbox {
	return &Outbox{urgent: newRing[Item](urgent), readings: newRing[Item](readings), notify: make(chan struct{}, 1)}
}

// Notify receives (coalesced) when items are waiting.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Take moves every waiting item to dst: alarms and events first, then
// readings, each in the order the Core put them.
func (o *Outbox) Take(dst []Item) []Item {
	o.mu.Lock()
	defer o.mu.Unlock()
	dst = o.urgent.popTo(dst, 0)
	return o.readings.popTo(dst, 0)
}

// Lost returns how many readings and how many alarms or events the Outbox
// dropped because it was full.
func (o *Outbox) Lost() (readings, urgent uint64) {
	return o.lostReadings.Load(), o.lostUrgent.Load()
}

func (o *Outbox) put(it Item) {
	o.mu.Lock()
	var ok bool
	if it.Kind == ItemReading {
		ok = o.readings.push(it)
	} else {
		ok = o.urgent.push(it)
	}
	o.mu.Unlock()
	switch {
	case !ok && it.Kind == ItemReading:
		o.lostReadings.Add(1)
	case !ok:
		o.lostUrgent.Add(1)
	}
	select {
	case o.notify <- struct{}{}:
	default:
	}
}
