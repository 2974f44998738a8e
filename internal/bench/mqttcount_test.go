package bench

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// wireCount is what a subscriber to "#" saw of one agent: payload bytes
// by kind of message and the readings they carried. Topic bytes and MQTT
// framing are not counted (both agents pay them per message, and a
// message carries many readings).
type wireCount struct {
	telemetry, telemetryV2, current, rest int64 // payload bytes (hazmon)
	telegraf                              int64 // payload bytes (Telegraf)
	readings                              int64 // live readings: hazmon v1 telemetry, Telegraf fields
	historical                            int64 // readings in hazmon telemetry marked historical (replays)
	dataLoss                              int   // hazmon data_loss events
	messages                              int64
}

func (w wireCount) total() int64 {
	return w.telemetry + w.telemetryV2 + w.current + w.rest + w.telegraf
}

func (w wireCount) minus(o wireCount) wireCount {
	return wireCount{
		telemetry: w.telemetry - o.telemetry, telemetryV2: w.telemetryV2 - o.telemetryV2,
		current: w.current - o.current, rest: w.rest - o.rest, telegraf: w.telegraf - o.telegraf,
		readings: w.readings - o.readings, historical: w.historical - o.historical,
		dataLoss: w.dataLoss - o.dataLoss, messages: w.messages - o.messages,
	}
}

// wireCounter counts what arrives on a brokertest subscription. It does
// as little per message as it can (the subscriber shares the machine with
// the agents it measures): hazmon telemetry readings are counted by their
// "sensor" keys, only events and Telegraf metrics are decoded.
type wireCounter struct {
	mu sync.Mutex
	c  wireCount
	// marks are the running totals after each message that carried
	// readings, with its arrival time: between windows the bench measures
	// from the first such message in its window to the last, so that how
	// a window falls between two batches (Telegraf flushes every second)
	// does not bias readings per second.
	marks []mark
}

// mark is the running total after a message carrying readings.
type mark struct {
	at  time.Time
	cum wireCount
}

var (
	sensorKey      = []byte(`"sensor":`)
	historicalTrue = []byte(`"historical":true`)
)

func (w *wireCounter) run(ch <-chan brokertest.Message, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case m := <-ch:
			w.add(m)
		}
	}
}

func (w *wireCounter) add(m brokertest.Message) {
	n := int64(len(m.Payload))
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	r0 := w.c.readings + w.c.historical
	defer func() {
		if w.c.readings+w.c.historical != r0 {
			w.marks = append(w.marks, mark{now, w.c})
		}
	}()
	w.c.messages++
	switch {
	case strings.HasPrefix(m.Topic, "telegraf/"):
		w.c.telegraf += n
		var tm struct {
			Fields map[string]json.RawMessage `json:"fields"`
		}
		if json.Unmarshal(m.Payload, &tm) == nil {
			w.c.readings += int64(len(tm.Fields))
		}
	case strings.HasSuffix(m.Topic, "/"+contract.KindTelemetry):
		w.c.telemetry += n
		k := int64(bytes.Count(m.Payload, sensorKey))
		if bytes.Contains(m.Payload, historicalTrue) {
			w.c.historical += k
		} else {
			w.c.readings += k
		}
	case strings.Contains(m.Topic, "/"+contract.KindTelemetry+"/"):
		w.c.telemetryV2 += n // contract v2 (…/telemetry/v2), when the agent publishes it
	case strings.HasSuffix(m.Topic, "/"+contract.KindCurrent):
		w.c.current += n
	case strings.HasSuffix(m.Topic, "/"+contract.KindEvent):
		w.c.rest += n
		var ev struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(m.Payload, &ev) == nil && ev.Type == contract.EventDataLoss {
			w.c.dataLoss++
		}
	default:
		w.c.rest += n
	}
}

// between returns what arrived from the first message carrying readings
// at or after t0 to the last one at or before t1, and the time between
// those two messages; ok is false when fewer than two fall in [t0, t1].
func (w *wireCounter) between(t0, t1 time.Time) (c wireCount, span time.Duration, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := sort.Search(len(w.marks), func(k int) bool { return !w.marks[k].at.Before(t0) })
	j := sort.Search(len(w.marks), func(k int) bool { return w.marks[k].at.After(t1) }) - 1
	if i >= len(w.marks) || j <= i {
		return wireCount{}, 0, false
	}
	return w.marks[j].cum.minus(w.marks[i].cum), w.marks[j].at.Sub(w.marks[i].at), true
}

func (w *wireCounter) snapshot() wireCount {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.c
}
