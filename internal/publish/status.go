package publish

import (
	"context"
	"sort"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazmon/hazmon/internal/contract"
)

func (p *Publisher) statusPayload(state string) []byte {
	p.mu.Lock()
	sensors := p.opts.Sensors
	p.mu.Unlock()
	if sensors == nil {
		sensors = []string{} // the schema wants an array, never null
	}
	b, err := contract.Marshal(contract.Status{V: contract.Version, State: state, TS: time.Now().UnixMilli(), Version: p.opts.Version, Sensors: sensors})
	if err != nil { // only strings and ints: cannot fail
		panic(err)
	}
	return b
}

func (p *Publisher) publishCurrent(c mqtt.Client) {
	p.mu.Lock()
	if !p.dirty {
		p.mu.Unlock()
		return
	}
	cur := contract.Current{V: contract.Version, Agent: p.opts.Agent, Site: p.opts.Site, TS: time.Now().UnixMilli()}
	for _, r := range p.current {
		cur.Readings = append(cur.Readings, r)
	}
	p.dirty = false
	p.mu.Unlock()
	sort.Slice(cur.Readings, func(i, j int) bool { return cur.Readings[i].Sensor < cur.Readings[j].Sensor })
	b, err := contract.Marshal(cur)
	if err != nil {
		p.log.Error("encode current snapshot", "err", err)
		return
	}
	c.Publish(p.Topic(contract.KindCurrent), 1, true, b)
}

func (p *Publisher) publishWait(ctx context.Context, c mqtt.Client, topic string, retained bool, payload []byte) error {
	tok := c.Publish(topic, 1, retained, payload)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(p.opts.PublishTimeout):
		return ErrPubackTimeout
	}
}

// goOffline publishes the retained offline status and disconnects (M4b),
// waiting for its PUBACK until deadline at most.
func (p *Publisher) goOffline(c mqtt.Client, deadline time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := p.publishWait(ctx, c, p.Topic(contract.KindStatus), true, p.statusPayload(contract.StateOffline)); err != nil {
		p.log.Warn("publish status offline failed; the broker's LWT will say it", "err", err)
	}
	c.Disconnect(uint(min(250*time.Millisecond, max(0, time.Until(deadline))) / time.Millisecond))
	p.setLink(func(l *Link) { l.Connected, l.Since, l.InFlight = false, time.Now(), 0 })
}
