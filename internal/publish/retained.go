package publish

import mqtt "github.com/eclipse/paho.mqtt.golang"

// retainedSet is the latest retained payload of each kind the agent keeps
// on the broker (the active alarms, ...): published when it changes and
// again on every connect. Guarded by Publisher.mu.
type retainedSet struct {
	payload map[string][]byte
	dirty   map[string]bool
}

// SetRetained makes payload the retained message of kind (the last topic
// level, e.g. contract.KindAlarms). It is published (QoS 1, retained) as
// soon as the link is up, and again on every connect; a later call
// replaces a payload not yet sent. It never blocks on the network.
func (p *Publisher) SetRetained(kind string, payload []byte) {
	p.mu.Lock()
	if p.retained.payload == nil {
		p.retained.payload, p.retained.dirty = map[string][]byte{}, map[string]bool{}
	}
	p.retained.payload[kind] = payload
	p.retained.dirty[kind] = true
	p.mu.Unlock()
	select {
	case p.retainedCh <- struct{}{}:
	default:
	}
}

// markRetained marks every retained payload to be sent again (a new
// connection: the broker may have lost them).
func (p *Publisher) markRetained() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.retained.payload {
		p.retained.dirty[k] = true
	}
}

// publishRetained sends the retained payloads that changed. It does not
// wait for their PUBACKs: a lost one is sent again on the next connect.
func (p *Publisher) publishRetained(c mqtt.Client) {
	p.mu.Lock()
	var kinds []string
	var payloads [][]byte
	for k, d := range p.retained.dirty {
		if d {
			kinds = append(kinds, k)
			payloads = append(payloads, p.retained.payload[k])
			p.retained.dirty[k] = false
		}
	}
	p.mu.Unlock()
	for i, k := range kinds {
		c.Publish(p.Topic(k), 1, true, payloads[i])
	}
}
