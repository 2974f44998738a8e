package publish

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazmon/hazmon/internal/contract"
)

// BootID returns this process's boot id, for status: 32 lowercase hex
// digits from crypto/rand drawn at first use, the same for the life of the
// process, so a consumer tells a restart (a new boot id) from a reconnect.
func BootID() string { return bootID() }

var bootID = sync.OnceValue(func() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go ≥ 1.24)
	return hex.EncodeToString(b[:])
})

// statusState is what the retained status says. Guarded by Publisher.mu.
type statusState struct {
	state   string    // contract.StateOnline, StateDegraded (StateOffline once stopped)
	reasons []string  // why degraded
	since   time.Time // when state or reasons last changed: the status's ts
	dirty   bool      // changed since last published
}

// SetState sets the agent's state in the retained status: online, or
// degraded with at least one reason (short texts, e.g. "buffer_fault:
// read-only file system"; they are published in the order given). On a
// change of state or reasons the status's ts becomes now and the status
// is republished as soon as the link is up (and again on every connect);
// the same state and reasons again change nothing. It never blocks on the
// network. It returns an error, changing nothing, for another state
// (offline is the publisher's own, at stop, and the broker's will),
// degraded without a reason, an empty reason, or online with reasons.
func (p *Publisher) SetState(state string, reasons []string) error {
	switch state {
	case contract.StateOnline:
		if len(reasons) > 0 {
			return fmt.Errorf("publish: state online with reasons %q", reasons)
		}
	case contract.StateDegraded:
		if len(reasons) == 0 {
			return errors.New("publish: state degraded needs a reason")
		}
		if slices.Contains(reasons, "") {
			return fmt.Errorf("publish: state degraded with an empty reason in %q", reasons)
		}
	default:
		return fmt.Errorf("publish: state %q: want online or degraded", state)
	}
	p.mu.Lock()
	if p.status.state == state && slices.Equal(p.status.reasons, reasons) {
		p.mu.Unlock()
		return nil
	}
	p.status.state, p.status.reasons, p.status.since = state, slices.Clone(reasons), time.Now()
	p.status.dirty = true
	p.mu.Unlock()
	p.wake()
	return nil
}

// State returns what the status says: the state, its reasons and since
// when (the status's ts).
func (p *Publisher) State() (state string, reasons []string, since time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status.state, slices.Clone(p.status.reasons), p.status.since
}

// SetConfig records a (re)loaded config: its contract.ConfigHash and its
// sensor ids. The status is republished with them at once (its ts, the
// time of the last change of state, stays), and the retained current
// snapshot drops sensors no longer configured, so a removed sensor's last
// reading is not shown as live. It never blocks on the network.
func (p *Publisher) SetConfig(hash string, sensors []string) {
	p.mu.Lock()
	p.opts.ConfigHash = hash
	p.setSensorsLocked(sensors)
	p.mu.Unlock()
	p.wake()
}

// SetSensors is SetConfig with the config hash unchanged.
func (p *Publisher) SetSensors(ids []string) {
	p.mu.Lock()
	p.setSensorsLocked(ids)
	p.mu.Unlock()
	p.wake()
}

func (p *Publisher) setSensorsLocked(ids []string) {
	p.opts.Sensors = append([]string(nil), ids...)
	p.cur.keep(ids)
	p.status.dirty = true
}

// wake makes the session publish what changed.
func (p *Publisher) wake() {
	select {
	case p.retainedCh <- struct{}{}:
	default:
	}
}

// statusLocked is the status as it stands; if take, it counts as
// published. Called with p.mu held.
func (p *Publisher) statusLocked(take bool) contract.Status {
	if take {
		p.status.dirty = false
	}
	sensors := p.opts.Sensors
	if sensors == nil {
		sensors = []string{} // the schema wants an array, never null
	}
	return contract.Status{V: contract.Version, State: p.status.state, Reasons: slices.Clone(p.status.reasons),
		TS: p.status.since.UnixMilli(), BootID: p.opts.BootID, Version: p.opts.Version,
		ConfigHash: p.opts.ConfigHash, Sensors: slices.Clone(sensors)}
}

// statusPayload returns the status as it stands, counted as published.
func (p *Publisher) statusPayload() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return encodeStatus(p.statusLocked(true))
}

// offlinePayload is the status saying offline since now, the agent's own
// word when it drops the link; with stopped, the publisher's state becomes
// offline too (a shutdown).
func (p *Publisher) offlinePayload(now time.Time, stopped bool) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if stopped {
		p.status.state, p.status.reasons, p.status.since = contract.StateOffline, nil, now
	}
	s := p.statusLocked(false)
	s.State, s.Reasons, s.TS = contract.StateOffline, nil, now.UnixMilli()
	return encodeStatus(s)
}

// willPayload is the last will registered with a connection: offline,
// marked will, without ts (the agent cannot know when the broker will
// publish it); the rest as it stands at the connect.
func (p *Publisher) willPayload() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.statusLocked(false)
	s.State, s.Reasons, s.TS, s.Will = contract.StateOffline, nil, 0, true
	return encodeStatus(s)
}

func encodeStatus(s contract.Status) []byte {
	b, err := contract.Marshal(s)
	if err != nil { // only strings, ints and bools: cannot fail
		panic(err)
	}
	return b
}

// publishStatus sends the status if it changed since last sent. It does
// not wait for the PUBACK: a lost one is sent again on the next connect.
func (p *Publisher) publishStatus(c mqtt.Client) {
	p.mu.Lock()
	if !p.status.dirty {
		p.mu.Unlock()
		return
	}
	b := encodeStatus(p.statusLocked(true))
	p.mu.Unlock()
	c.Publish(p.Topic(contract.KindStatus), 1, true, b)
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
	if err := p.publishWait(ctx, c, p.Topic(contract.KindStatus), true, p.offlinePayload(time.Now(), true)); err != nil {
		p.log.Warn("publish status offline failed; the broker's LWT will say it", "err", err)
	}
	c.Disconnect(uint(min(250*time.Millisecond, max(0, time.Until(deadline))) / time.Millisecond))
	p.setLink(func(l *Link) { l.Connected, l.Since, l.InFlight = false, time.Now(), 0 })
}
