package publish

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// recvd is one message the consumer took: its seq, rec range and epoch.
type recvd struct{ seq, rec, last, epoch uint64 }

// consumer drains a queue through the publisher's next and build (as a
// session does, acking each message at once) and checks every message
// as a platform would: schema-valid, seq strictly increasing per stream
// (a seq seen before must be an exact repeat), each record number taken
// once, epoch never going back.
type consumer struct {
	mu       sync.Mutex
	bySeq    map[store.Stream]map[uint64][]byte
	msgs     map[store.Stream][]recvd
	got      map[store.Stream]map[uint64]bool
	want     map[store.Stream]map[uint64]bool
	losses   []contract.Event
	resets   []contract.Event
	events   []contract.Event
	errs     []string
	lossy    map[store.Stream]uint64 // records up to these may be lost by a reset
	paused   bool
	stopc    chan struct{}
	done     chan struct{}
	maxNextD time.Duration
}

func newConsumer(t *testing.T) *consumer {
	c := &consumer{bySeq: map[store.Stream]map[uint64][]byte{}, msgs: map[store.Stream][]recvd{},
		got: map[store.Stream]map[uint64]bool{}, want: map[store.Stream]map[uint64]bool{}}
	for _, s := range store.Streams {
		c.bySeq[s], c.got[s], c.want[s] = map[uint64][]byte{}, map[uint64]bool{}, map[uint64]bool{}
	}
	t.Cleanup(func() {
		if c.stopc != nil {
			c.stop()
		}
	})
	return c
}

func (c *consumer) run(t *testing.T, p *Publisher, q Queue) {
	c.stopc, c.done = make(chan struct{}), make(chan struct{})
	stopc, done := c.stopc, c.done
	go func() {
		defer close(done)
		sent := map[store.Stream]uint64{}
		for {
			select {
			case <-stopc:
				return
			default:
			}
			c.mu.Lock()
			paused := c.paused
			c.mu.Unlock()
			if paused {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			t0 := time.Now()
			m, ok, err := p.next(sent, 0)
			c.mu.Lock()
			c.maxNextD = max(c.maxNextD, time.Since(t0))
			c.mu.Unlock()
			if err != nil || !ok {
				select {
				case <-q.Notify():
				case <-time.After(20 * time.Millisecond):
				case <-stopc:
					return
				}
				continue
			}
			c.record(m)
			sent[m.Stream] = m.Seq
			if err := q.Ack(m.Stream, m.Seq); err != nil {
				c.fail("ack %s %d: %v", m.Stream, m.Seq, err)
			}
		}
	}()
}

func (c *consumer) stop() {
	if c.stopc == nil {
		return
	}
	close(c.stopc)
	<-c.done
	c.stopc = nil
}

func (c *consumer) pause(v bool) { c.mu.Lock(); c.paused = v; c.mu.Unlock() }

// mayLose says a reset may lose the records of s up to rec (they are in
// the file about to be damaged); the buffer_reset event must count them.
func (c *consumer) mayLose(s store.Stream, rec uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lossy == nil {
		c.lossy = map[store.Stream]uint64{}
	}
	c.lossy[s] = rec
}

func (c *consumer) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failLocked(format, args...)
}

func (c *consumer) failLocked(format string, args ...any) {
	if len(c.errs) < 20 {
		c.errs = append(c.errs, fmt.Sprintf(format, args...))
	}
}

func (c *consumer) appended(s store.Stream, rec uint64) {
	c.mu.Lock()
	c.want[s][rec] = true
	c.mu.Unlock()
}

func (c *consumer) record(m store.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := contract.Validate(string(m.Stream), m.Payload); err != nil {
		c.failLocked("%s seq %d: %v", m.Stream, m.Seq, err)
		return
	}
	if prev, ok := c.bySeq[m.Stream][m.Seq]; ok {
		if !bytes.Equal(prev, m.Payload) {
			c.failLocked("%s seq %d repeated with another payload", m.Stream, m.Seq)
		}
		return
	}
	var h struct {
		Seq      uint64            `json:"seq"`
		Epoch    uint64            `json:"epoch"`
		Rec      []uint64          `json:"rec"`
		ID       uint64            `json:"id"`
		Readings []json.RawMessage `json:"readings"`
	}
	_ = json.Unmarshal(m.Payload, &h)
	r := recvd{seq: h.Seq, epoch: h.Epoch}
	switch {
	case m.Stream == store.Event:
		r.rec, r.last = h.ID, h.ID
	case len(h.Rec) == 2:
		r.rec, r.last = h.Rec[0], h.Rec[1]
	}
	if m.Stream == store.Telemetry && int(r.last-r.rec+1) != len(h.Readings) {
		c.failLocked("telemetry seq %d: rec %v for %d readings", h.Seq, h.Rec, len(h.Readings))
	}
	if ms := c.msgs[m.Stream]; len(ms) > 0 {
		prev := ms[len(ms)-1]
		if r.seq <= prev.seq {
			c.failLocked("%s: new seq %d after %d", m.Stream, r.seq, prev.seq)
		}
		if r.epoch < prev.epoch {
			c.failLocked("%s seq %d: epoch %d after %d", m.Stream, r.seq, r.epoch, prev.epoch)
		}
	}
	if r.rec == 0 || r.epoch == 0 {
		c.failLocked("%s seq %d without rec/id or epoch: %s", m.Stream, r.seq, m.Payload)
	}
	for x := r.rec; x <= r.last && x > 0; x++ {
		if c.got[m.Stream][x] {
			c.failLocked("%s rec %d arrived twice (seq %d)", m.Stream, x, r.seq)
		}
		c.got[m.Stream][x] = true
	}
	c.bySeq[m.Stream][m.Seq] = m.Payload
	c.msgs[m.Stream] = append(c.msgs[m.Stream], r)
	if m.Stream == store.Event {
		var e contract.Event
		_ = json.Unmarshal(m.Payload, &e)
		c.events = append(c.events, e)
		switch e.Type {
		case contract.EventDataLoss:
			c.losses = append(c.losses, e)
		case contract.EventBufferReset:
			c.resets = append(c.resets, e)
		}
	}
}

// explained reports whether rec of stream was received or a data_loss
// event names it (c.mu held).
func (c *consumer) explained(s store.Stream, rec uint64) bool {
	if c.got[s][rec] {
		return true
	}
	for _, e := range c.losses {
		if e.Stream == string(s) && len(e.Rec) == 2 && rec >= e.Rec[0] && rec <= e.Rec[1] {
			return true
		}
	}
	return false
}

// unexplained lists, per stream, the record numbers up to the last one
// accepted that were neither received nor named by a data_loss event.
func (c *consumer) unexplained(q Queue) map[store.Stream][]uint64 {
	out := map[store.Stream][]uint64{}
	for _, s := range store.Streams {
		last, _ := q.LastID(s)
		for r := uint64(1); r <= last; r++ {
			if !c.explained(s, r) {
				out[s] = append(out[s], r)
			}
		}
	}
	return out
}

// allowed is how many records the buffer_reset events counted lost (-1:
// a reset could not count them).
func (c *consumer) allowed() int64 {
	var n int64
	for _, e := range c.resets {
		if e.Lost == nil {
			return -1
		}
		n += *e.Lost
	}
	return n
}

// complete: every record appended arrived or is named lost, and so are
// all records of the buffer's own up to the last (bar what resets counted).
func (c *consumer) complete(q Queue) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, recs := range c.want {
		for r := range recs {
			if !c.explained(s, r) && (c.allowed() == 0 || r > c.lossy[s]) {
				return false
			}
		}
	}
	n := 0
	for _, recs := range c.unexplained(q) {
		n += len(recs)
	}
	return int64(n) == 0 || (c.allowed() != 0 && (c.allowed() < 0 || int64(n) <= c.allowed()))
}

func (c *consumer) check(t *testing.T, q Queue) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		t.Fatalf("consumer saw %d violation(s):\n%v", len(c.errs), c.errs)
	}
	if c.maxNextD > 3*time.Second {
		t.Fatalf("forming a message took %v: the publisher stalled", c.maxNextD)
	}
}

func (c *consumer) summary(q Queue) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	un := c.unexplained(q)
	for s := range un {
		if len(un[s]) > 10 {
			un[s] = un[s][:10]
		}
	}
	return fmt.Sprintf("got %d/%d/%d msgs (alarm/event/telemetry); unexplained (first 10) %v; losses %d, resets %d; errs %v",
		len(c.msgs[store.Alarm]), len(c.msgs[store.Event]), len(c.msgs[store.Telemetry]), un, len(c.losses), len(c.resets), c.errs)
}

func (c *consumer) lossFor(s store.Stream, rec uint64) *contract.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.losses {
		if e.Stream == string(s) && len(e.Rec) == 2 && rec >= e.Rec[0] && rec <= e.Rec[1] {
			return &e
		}
	}
	return nil
}

func (c *consumer) sawEvent(typ, reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e.Type == typ && e.Reason == reason {
			return true
		}
	}
	return false
}

func (c *consumer) has(s store.Stream, rec uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[s][rec]
}

func (c *consumer) lastSeq(s store.Stream) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms := c.msgs[s]
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].seq
}

func (c *consumer) maxRec(s store.Stream) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m uint64
	for r := range c.got[s] {
		m = max(m, r)
	}
	return m
}

func (c *consumer) firstAfter(s store.Stream, seq uint64) recvd {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms := append([]recvd(nil), c.msgs[s]...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	for _, m := range ms {
		if m.seq > seq {
			return m
		}
	}
	return recvd{}
}
