package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// The eviction a consumer can audit. The agent process with a 1 MiB
// buffer, 10 sensors every 20 ms and the broker down until the buffer
// has overflowed; then the broker returns. A consumer written from the
// README alone (recConsumer: it keys records by stream and rec, nothing
// else) finds every gap in rec, and for each the data_loss event with the
// same stream whose rec range covers it; and every data_loss range is a
// gap (nothing in it arrived).
func TestBufferCap_ConsumerFindsEveryGap(t *testing.T) {
	b := brokertest.Start(t)
	s := startSite(t, 10)
	rec := newRecorder(t, b, "bureau-gaps", s)
	rc := newRecConsumer(t, b)
	dataDir := t.TempDir()
	cfg := agentConfig{Brokers: []string{b.URL}, DataDir: dataDir, SlaveAddr: s.addr, Sensors: 10, Interval: "20ms",
		SensorName: "GAS-DETECTOR-WITH-A-LONG-TAG-FOR-THE-BUFFER-CAP", Unit: "normal-cubic-metres-per-hour-at-20C-101kPa",
		MaxBytes: 1 << 20}.write(t)
	a := startAgent(t, cfg)
	rec.until(t, "live readings", func() bool { return len(rec.snapshot()) >= 50 })
	b.Stop()
	deadline := time.Now().Add(wait)
	for len(a.logLines("buffer evicted records")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the 1 MiB buffer did not overflow within %v", wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // keep overflowing
	backAt := time.Now()
	b.Start()
	rec.until(t, "readings sampled 2 s after the link came back", func() bool {
		for _, ts := range perSensor(rec.snapshot()) {
			if len(ts) == 0 || ts[len(ts)-1] < backAt.Add(2*time.Second).UnixMilli() {
				return false
			}
		}
		return true
	})
	a.term()
	rec.check(t)
	var gaps []span
	eventually(func() bool { gaps = rc.unexplainedGaps(); return len(gaps) == 0 })
	if len(gaps) > 0 {
		t.Fatalf("gaps in rec no data_loss event explains: %v\n%s", gaps, rc.summary())
	}
	if rc.named() == 0 {
		t.Fatalf("no data_loss event names any record: %s", rc.summary())
	}
	if bad := rc.lossesNotGaps(); len(bad) > 0 {
		t.Fatalf("data_loss ranges with records that did arrive: %v", bad)
	}
	t.Log(rc.summary())
}

// span is an inclusive range of record numbers.
type span struct{ from, to uint64 }

// recConsumer is the README's consumer: per (epoch, stream) it keeps the
// record numbers received (telemetry and alarms "rec":[first,last], events
// "id"), deduplicating repeats, and the data_loss events' (stream, rec).
// A gap is a record number below the highest received that never came; a
// gap is explained when a data_loss event of that stream names it.
type recConsumer struct {
	mu     sync.Mutex
	got    map[string]map[uint64]bool // stream → recs received
	losses []contract.Event
	msgs   int
}

func newRecConsumer(t *testing.T, b *brokertest.Broker) *recConsumer {
	c := &recConsumer{got: map[string]map[uint64]bool{}}
	ch := b.Subscribe(t, "bureau-readme", topics)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-ch:
				c.add(m)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func (c *recConsumer) add(m brokertest.Message) {
	stream := m.Topic[strings.LastIndex(m.Topic, "/")+1:]
	var h struct {
		Rec    []uint64 `json:"rec"`
		ID     uint64   `json:"id"`
		Type   string   `json:"type"`
		Stream string   `json:"stream"`
	}
	if json.Unmarshal(m.Payload, &h) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs++
	if c.got[stream] == nil {
		c.got[stream] = map[uint64]bool{}
	}
	switch stream {
	case contract.KindTelemetry, contract.KindAlarm:
		if len(h.Rec) == 2 {
			for r := h.Rec[0]; r <= h.Rec[1]; r++ {
				c.got[stream][r] = true
			}
		}
	case contract.KindEvent:
		c.got[stream][h.ID] = true
		if h.Type == contract.EventDataLoss {
			var e contract.Event
			_ = json.Unmarshal(m.Payload, &e)
			c.losses = append(c.losses, e)
		}
	}
}

func (c *recConsumer) unexplainedGaps() []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []span
	for stream, got := range c.got {
		var top uint64
		for r := range got {
			top = max(top, r)
		}
		for r := uint64(1); r <= top; r++ {
			if got[r] || c.explains(stream, r) {
				continue
			}
			if n := len(out); n > 0 && out[n-1].to+1 == r {
				out[n-1].to = r
			} else {
				out = append(out, span{r, r})
			}
		}
	}
	return out
}

func (c *recConsumer) explains(stream string, r uint64) bool {
	for _, e := range c.losses {
		if e.Stream == stream && len(e.Rec) == 2 && r >= e.Rec[0] && r <= e.Rec[1] {
			return true
		}
	}
	return false
}

func (c *recConsumer) lossesNotGaps() []contract.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var bad []contract.Event
	for _, e := range c.losses {
		for r := e.Rec[0]; len(e.Rec) == 2 && r <= e.Rec[1]; r++ {
			if c.got[e.Stream][r] {
				bad = append(bad, e)
				break
			}
		}
	}
	return bad
}

// named is how many records the data_loss events name.
func (c *recConsumer) named() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, e := range c.losses {
		if len(e.Rec) == 2 {
			n += e.Rec[1] - e.Rec[0] + 1
		}
	}
	return n
}

func (c *recConsumer) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lost uint64
	for _, e := range c.losses {
		if len(e.Rec) == 2 {
			lost += e.Rec[1] - e.Rec[0] + 1
		}
	}
	return fmt.Sprintf("README consumer: %d messages, %d telemetry records, %d data_loss events naming %d records",
		c.msgs, len(c.got[contract.KindTelemetry]), len(c.losses), lost)
}
