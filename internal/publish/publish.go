// Package publish sends the buffer's streams to the bureau's MQTT broker
// (QoS 1) and keeps the agent's retained status and current snapshot.
//
// The bbolt buffer is the only source of truth: the paho session is clean
// and paho never reconnects or resends by itself. On every connect the
// Publisher publishes its status (online or degraded), then drains alarm,
// event and telemetry messages in seq order with a bounded window of
// publishes in flight. A
// message is acknowledged in the buffer only on its PUBACK; on any failure
// the connection is dropped and the next connection starts again from the
// lowest unacknowledged seq, so a subscriber may see repeats but never a
// new seq lower than one it already saw (field cases M1, M2).
package publish

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// Link is the state of the broker link, for the agent's status.
type Link struct {
	Connected bool
	Broker    string    // URL of the broker connected (or last tried)
	Since     time.Time // when the link last went up or down
	LastError string
	InFlight  int // publishes waiting for a PUBACK
}

// Queue is the buffer a Publisher drains: per stream, formed messages
// waiting for their PUBACK and records to form into new ones.
// *store.Store implements it (on its bbolt file or, while the file cannot
// be written, in memory); the queue test suite runs the same cases over
// it with faults injected.
type Queue interface {
	// Outbox returns up to max formed, unacknowledged messages of stream
	// with a seq above after, in seq order (max <= 0: all).
	Outbox(stream store.Stream, after uint64, max int) ([]store.Message, error)
	// Form builds the next message of stream from up to maxItems pending
	// records (maxBytes of record data beyond the first) with build, and
	// assigns its seq; ok is false if nothing is pending. It never waits
	// for the disk longer than store.StallAfter, and a record build
	// cannot encode is dead-lettered, not returned as an error.
	Form(stream store.Stream, maxItems, maxBytes int, build store.BuildFunc) (msg store.Message, ok bool, err error)
	// Ack removes a message after its PUBACK; acking twice is no error.
	Ack(stream store.Stream, seq uint64) error
	// LastID is the record number of the last record accepted on stream.
	LastID(stream store.Stream) (uint64, error)
	// Notify receives (coalesced) when there may be something new to send.
	Notify() <-chan struct{}
}

var _ Queue = (*store.Store)(nil)

// Publisher drains a store to a broker. Create it with New, run it with
// Run; it is stopped by cancelling Run's context.
type Publisher struct {
	st   Queue
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	link     Link
	cur      currentSnapshot // guarded by mu (current.go)
	retained retainedSet     // guarded by mu (retained.go)
	status   statusState     // guarded by mu (status.go)
	// retainedCh wakes the session when a retained payload changed.
	retainedCh chan struct{}

	v2 telemetryV2 // the compact encoding's table and encoder (telemetry_v2.go)
	// linkLost is set when paho reports the session's connection lost
	// (cleared when a session starts): a message formed after that is
	// delivered in a later session, so it is historical (stream.go).
	linkLost atomic.Bool
}

// New returns a Publisher for the queue st. It does not connect.
func New(st Queue, opts Options) (*Publisher, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("publish: no broker URL")
	}
	if opts.Site == "" || opts.Agent == "" {
		return nil, errors.New("publish: site and agent id are required")
	}
	opts.defaults()
	switch opts.Telemetry {
	case config.TelemetryV1, config.TelemetryV2, config.TelemetryBoth:
	default:
		return nil, fmt.Errorf("publish: telemetry encoding %q: want v1, v2 or both", opts.Telemetry)
	}
	if len(opts.BootID) != 32 || strings.Trim(opts.BootID, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("publish: boot id %q is not 32 lowercase hex digits", opts.BootID)
	}
	return &Publisher{st: st, opts: opts, log: opts.Logger, cur: newCurrentSnapshot(opts), retainedCh: make(chan struct{}, 1),
		status: statusState{state: contract.StateOnline, since: time.Now()},
		v2:     telemetryV2{enc: contract.NewTelemetryV2Encoder(opts.Agent, opts.Site)}}, nil
}

// Topic returns the topic of a message kind for this agent.
func (p *Publisher) Topic(kind string) string {
	return contract.Topic(p.opts.TopicPrefix, p.opts.Site, p.opts.Agent, kind)
}

// Link returns a snapshot of the link state.
func (p *Publisher) Link() Link {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.link
}

func (p *Publisher) setLink(f func(*Link)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.link)
}
