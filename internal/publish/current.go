package publish

import (
	"math"
	"slices"
	"strconv"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/safety"
)

// MinCurrentGap is the least time between two publishes of the retained
// current snapshot, whatever changes.
const MinCurrentGap = time.Second

// currentSnapshot is the retained …/current message: the latest reading
// of every sensor, and when it is due. It is published
//
//   - at once (but not within MinCurrentGap of the last publish) when a
//     sensor's status changed, a value moved by more than its resolution ×
//     deadband from the value last published, a sensor came or went, or a
//     new connection began (the broker may have lost it);
//   - otherwise, when readings came since the last publish, at
//     Options.CurrentInterval after it.
//
// With no reading since the last publish nothing is republished. Each
// sensor's entry is encoded once per publish at most, and only if a
// reading came since; the message is the entries concatenated.
// Guarded by Publisher.mu.
type currentSnapshot struct {
	entries  map[string]*currentEntry
	ids      []string // sorted, the order of readings in the message
	head     []byte   // {"v":1,"agent":…,"site":…,"ts":
	deadband float64  // Options.CurrentDeadband
	interval time.Duration
	res      map[string]float64 // Options.Resolutions
	changed  bool               // a reading came, or a sensor went, since the last publish
	urgent   bool               // ... and one of them must be published at once
	lastPub  time.Time          // zero: never published
}

// currentEntry is one sensor's entry of the snapshot.
type currentEntry struct {
	r     contract.Reading
	enc   []byte // r encoded (valid unless stale)
	stale bool
	band  float64 // resolution × deadband: a move beyond it is urgent
	tol   float64 // what float noise may add to a move of exactly band
	// What the last published message said of the sensor.
	published bool
	pubNull   bool
	pubValue  float64
	pubStatus string
}

func newCurrentSnapshot(o Options) currentSnapshot {
	c := currentSnapshot{entries: map[string]*currentEntry{}, deadband: *o.CurrentDeadband, interval: o.CurrentInterval, res: o.Resolutions}
	c.head = append(c.head, `{"v":`...)
	c.head = strconv.AppendInt(c.head, contract.Version, 10)
	c.head = append(c.head, `,"agent":`...)
	c.head = contract.AppendString(c.head, o.Agent)
	c.head = append(c.head, `,"site":`...)
	c.head = contract.AppendString(c.head, o.Site)
	c.head = append(c.head, `,"ts":`...)
	return c
}

// update makes r its sensor's latest reading. It reports whether the
// snapshot may have become due earlier than before (the session must
// look again). A reading with a value that is not a finite number is
// ignored (contract.FromReading never makes one).
func (c *currentSnapshot) update(r contract.Reading) (sooner bool) {
	if r.Value != nil && (math.IsNaN(*r.Value) || math.IsInf(*r.Value, 0)) {
		return false
	}
	e := c.entries[r.Sensor]
	if e == nil {
		e = &currentEntry{}
		c.setBand(r.Sensor, e)
		c.entries[r.Sensor] = e
		i, _ := slices.BinarySearch(c.ids, r.Sensor)
		c.ids = slices.Insert(c.ids, i, r.Sensor)
	}
	e.r, e.stale = r, true
	sig := e.significant(r)
	sooner = !c.changed || (sig && !c.urgent)
	c.changed = true
	c.urgent = c.urgent || sig
	return sooner
}

// setBand sets the entry's deadband from the sensor's resolution (0 or
// unknown: safety.DefaultResolution).
func (c *currentSnapshot) setBand(id string, e *currentEntry) {
	res := c.res[id]
	if !(res > 0) {
		res = safety.DefaultResolution
	}
	e.band, e.tol = res*c.deadband, res*1e-6
}

// setResolutions replaces the sensors' resolutions (a reload).
func (c *currentSnapshot) setResolutions(res map[string]float64) {
	c.res = res
	for id, e := range c.entries {
		c.setBand(id, e)
	}
}

// significant reports whether r differs from what was last published of
// its sensor enough to be published at once.
func (e *currentEntry) significant(r contract.Reading) bool {
	switch {
	case !e.published, r.Status != e.pubStatus, (r.Value == nil) != e.pubNull:
		return true
	case r.Value == nil:
		return false
	}
	return math.Abs(*r.Value-e.pubValue) > e.band+e.tol
}

// keep drops the sensors not in ids (no longer configured).
func (c *currentSnapshot) keep(ids []string) {
	keep := make(map[string]bool, len(ids))
	for _, id := range ids {
		keep[id] = true
	}
	n := len(c.ids)
	c.ids = slices.DeleteFunc(c.ids, func(id string) bool { return !keep[id] })
	for id := range c.entries {
		if !keep[id] {
			delete(c.entries, id)
		}
	}
	if len(c.ids) != n {
		c.changed, c.urgent = true, true
	}
}

// resend marks the snapshot due at once (a new connection).
func (c *currentSnapshot) resend() {
	if len(c.ids) > 0 {
		c.changed, c.urgent = true, true
	}
}

// due returns when the snapshot is next to be published; ok is false if
// nothing is to be published until a reading comes.
func (c *currentSnapshot) due() (at time.Time, ok bool) {
	switch {
	case !c.changed:
		return time.Time{}, false
	case c.lastPub.IsZero():
		return time.Time{}, true // at once
	case c.urgent:
		return c.lastPub.Add(MinCurrentGap), true
	}
	return c.lastPub.Add(c.interval), true
}

// take returns the message to publish at now, or nil if none is due; a
// message returned counts as published.
func (c *currentSnapshot) take(now time.Time) []byte {
	if at, ok := c.due(); !ok || now.Before(at) {
		return nil
	}
	size := len(c.head) + len(`1764403200000,"readings":[]}`)
	for _, id := range c.ids {
		e := c.entries[id]
		if e.stale {
			e.enc, e.stale = contract.AppendReading(e.enc[:0], e.r), false
		}
		size += len(e.enc) + 1
	}
	b := make([]byte, 0, size) // paho holds it until sent: never reused
	b = append(b, c.head...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	b = append(b, `,"readings":[`...)
	for i, id := range c.ids {
		e := c.entries[id]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.enc...)
		e.published, e.pubStatus, e.pubNull = true, e.r.Status, e.r.Value == nil
		if e.r.Value != nil {
			e.pubValue = *e.r.Value
		}
	}
	b = append(b, "]}"...)
	c.lastPub, c.changed, c.urgent = now, false, false
	return b
}

// UpdateCurrent records the latest reading of a sensor for the retained
// current snapshot (see currentSnapshot for when it is published). It
// never blocks on the network.
func (p *Publisher) UpdateCurrent(r contract.Reading) {
	p.mu.Lock()
	sooner := p.cur.update(r)
	p.mu.Unlock()
	if sooner {
		p.wake()
	}
}

// SetResolutions replaces the sensors' resolutions (engineering units, by
// id) the current snapshot's deadband is counted in: after a reload.
func (p *Publisher) SetResolutions(res map[string]float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur.setResolutions(res)
}

// Current returns the sensors of the current snapshot (sorted ids).
func (p *Publisher) Current() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.cur.ids)
}

// currentDue is currentSnapshot.due under the lock.
func (p *Publisher) currentDue() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur.due()
}

// publishCurrent publishes the current snapshot if it is due. It does
// not wait for the PUBACK: it is sent again on the next connect.
func (p *Publisher) publishCurrent(c mqtt.Client) {
	p.mu.Lock()
	b := p.cur.take(p.opts.Now())
	p.mu.Unlock()
	if b != nil {
		c.Publish(p.Topic(contract.KindCurrent), 1, true, b)
	}
}

// currentTimer wakes a session when the current snapshot falls due.
type currentTimer struct {
	t     *time.Timer
	armed time.Time // the due time the timer is set for; zero: stopped
	on    bool
}

func newCurrentTimer() *currentTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &currentTimer{t: t}
}

// arm sets the timer for the snapshot's due time (stops it if none).
func (ct *currentTimer) arm(p *Publisher) {
	at, ok := p.currentDue()
	switch {
	case !ok:
		if ct.on {
			ct.t.Stop()
			ct.on = false
		}
	case !ct.on || !at.Equal(ct.armed):
		ct.t.Reset(max(0, at.Sub(p.opts.Now())))
		ct.armed, ct.on = at, true
	}
}

// fired notes that the timer went off.
func (ct *currentTimer) fired() { ct.on = false }

// resendCurrent makes the snapshot due at once (a new connection).
func (p *Publisher) resendCurrent() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur.resend()
}
