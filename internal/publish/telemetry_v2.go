package publish

import (
	"sync"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// telemetryV2 is the compact (v2) encoding's state: the registry table it
// indexes and the encoder whose buffers are reused message after message.
type telemetryV2 struct {
	mu    sync.Mutex // guards both: Form may run while the app sets a new table
	index *contract.TelemetryV2Index
	enc   *contract.TelemetryV2Encoder
}

// SetTelemetryIndex gives the sensor table of the retained registry that
// v2 telemetry messages index (points.Registry.Index). The app calls it
// with every registry it publishes, before SetRetained(KindPoints, ...);
// messages are formed against the table set last. Until it is called, a
// v2 message names every sensor by its id (reg ""). Without effect for
// mqtt.telemetry v1.
func (p *Publisher) SetTelemetryIndex(x *contract.TelemetryV2Index) {
	p.v2.mu.Lock()
	p.v2.index = x
	p.v2.mu.Unlock()
}

// buildV2 forms the v2 message of items. The payload is a new slice (the
// buffer keeps it); everything else is the encoder's reused memory.
func (p *Publisher) buildV2(h store.Head, items []store.Item, historical bool) ([]byte, error) {
	p.v2.mu.Lock()
	defer p.v2.mu.Unlock()
	th := contract.TelemetryHead{Seq: h.Seq, Epoch: h.Epoch, Historical: historical}
	if items[0].ID > 0 {
		th.First, th.Last = items[0].ID, items[len(items)-1].ID
	}
	p.v2.enc.Begin(th, p.v2.index)
	size := 64
	for _, it := range items {
		if err := p.v2.enc.Add(it.Data); err != nil {
			return nil, err
		}
		size += 8
	}
	return p.v2.enc.Finish(make([]byte, 0, size)), nil
}
