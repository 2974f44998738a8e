// Package publish sends the buffer's streams to the bureau's MQTT broker
// (QoS 1) and keeps the agent's retained status and current snapshot.
//
// The bbolt buffer is the only source of truth: the paho session is clean
// and paho never reconnects or resends by itself. On every connect the
// Publisher publishes status online, then drains alarm, event and telemetry
// messages in seq order with a bounded window of publishes in flight. A
// message is acknowledged in the buffer only on its PUBACK; on any failure
// the connection is dropped and the next connection starts again from the
// lowest unacknowledged seq, so a subscriber may see repeats but never a
// new seq lower than one it already saw (field cases M1, M2).
package publish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// Defaults of Options.
const (
	DefaultKeepAlive      = 30 * time.Second // MQTT keepalive; the LWT fires within 1.5× this (M4)
	DefaultConnectTimeout = 10 * time.Second
	DefaultPublishTimeout = 10 * time.Second // wait for one PUBACK
	DefaultWindow         = 16               // publishes in flight
	DefaultWindowBytes    = 64 << 10         // payload bytes in flight (at least one message)
	DefaultBatchMax       = 200              // readings per telemetry message
	DefaultBatchBytes     = 64 << 10         // encoded readings per telemetry message
	DefaultBackoffMin     = time.Second
	DefaultBackoffMax     = time.Minute
	CurrentInterval       = time.Second // the current snapshot is refreshed at most this often
)

// ErrPubackTimeout means a PUBACK did not come within PublishTimeout: the
// link is treated as dead and dropped.
var ErrPubackTimeout = errors.New("no PUBACK within the publish timeout")

// Options configures a Publisher. Brokers, Site and Agent are required.
type Options struct {
	Brokers        []string // tried in order: tcp://host:1883, ssl://host:8883
	ClientID       string   // default "hazmon-<site>-<agent>"
	Username       string
	PasswordFile   string      // read at each connect; never logged
	TLS            *tls.Config // nil: from the broker URL scheme, system roots
	TopicPrefix    string      // default contract.DefaultTopicPrefix
	Site, Agent    string
	Version        string   // agent version, in status
	Sensors        []string // sensor ids, in status
	KeepAlive      time.Duration
	ConnectTimeout time.Duration
	PublishTimeout time.Duration
	// Window bounds the publishes waiting for a PUBACK, WindowBytes their
	// payload bytes (one message is always allowed). Together with
	// RateBytes they pace a replay so that a slow uplink is never queued
	// for longer than PublishTimeout and keepalive pings are not stuck
	// behind a backlog (field case M3).
	Window      int
	WindowBytes int
	// RateBytes caps the payload bytes per second sent from the buffer
	// (0: unlimited). Set it below the uplink's capacity on slow links.
	RateBytes  int
	BatchMax   int
	BatchBytes int
	BackoffMin time.Duration
	BackoffMax time.Duration
	Logger     *slog.Logger
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.KeepAlive, DefaultKeepAlive)
	def(&o.ConnectTimeout, DefaultConnectTimeout)
	def(&o.PublishTimeout, DefaultPublishTimeout)
	def(&o.BackoffMin, DefaultBackoffMin)
	def(&o.BackoffMax, DefaultBackoffMax)
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.WindowBytes <= 0 {
		o.WindowBytes = DefaultWindowBytes
	}
	if o.BatchMax <= 0 {
		o.BatchMax = DefaultBatchMax
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = contract.DefaultTopicPrefix
	}
	if o.ClientID == "" {
		o.ClientID = "hazmon-" + o.Site + "-" + o.Agent
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// OptionsFromConfig maps the mqtt and agent sections of the config to
// Options (TLS files loaded, durations defaulted).
func OptionsFromConfig(m config.MQTT, a config.Agent, version string, sensors []string) (Options, error) {
	o := Options{
		Brokers: m.Brokers, ClientID: m.ClientID, Username: m.Username, PasswordFile: m.PasswordFile,
		TopicPrefix: m.TopicPrefix, Site: a.Site, Agent: a.ID, Version: version, Sensors: sensors,
		KeepAlive: m.KeepAlive.D(), ConnectTimeout: m.ConnectTimeout.D(), PublishTimeout: m.PublishTimeout.D(),
		BatchMax: m.BatchMax, WindowBytes: m.WindowBytes, RateBytes: m.RateBytes,
	}
	if m.TLS != (config.TLS{}) || anyTLS(m.Brokers) {
		t, err := TLSConfig(m.TLS)
		if err != nil {
			return Options{}, err
		}
		o.TLS = t
	}
	return o, nil
}

func anyTLS(urls []string) bool {
	for _, u := range urls {
		if strings.HasPrefix(u, "ssl://") || strings.HasPrefix(u, "tls://") || strings.HasPrefix(u, "mqtts://") {
			return true
		}
	}
	return false
}

// TLSConfig builds a TLS 1.2+ client config: CA file (else system roots),
// optional client certificate and key, server name. Server verification
// stays on unless InsecureSkipVerify is set.
func TLSConfig(c config.TLS) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt tls: ca_file %s holds no PEM certificate", c.CAFile)
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: load client cert %s / key %s: %w", c.CertFile, c.KeyFile, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// Link is the state of the broker link, for the agent's status.
type Link struct {
	Connected bool
	Broker    string    // URL of the broker connected (or last tried)
	Since     time.Time // when the link last went up or down
	LastError string
	InFlight  int // publishes waiting for a PUBACK
}

// Publisher drains a store to a broker. Create it with New, run it with
// Run; it is stopped by cancelling Run's context.
type Publisher struct {
	st   *store.Store
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	link     Link
	current  map[string]contract.Reading
	dirty    bool
	retained retainedSet // guarded by mu (retained.go)
	// retainedCh wakes the session when a retained payload changed.
	retainedCh chan struct{}
}

// New returns a Publisher for st. It does not connect.
func New(st *store.Store, opts Options) (*Publisher, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("publish: no broker URL")
	}
	if opts.Site == "" || opts.Agent == "" {
		return nil, errors.New("publish: site and agent id are required")
	}
	opts.defaults()
	return &Publisher{st: st, opts: opts, log: opts.Logger, current: map[string]contract.Reading{}, retainedCh: make(chan struct{}, 1)}, nil
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

// UpdateCurrent records the latest reading of a sensor for the retained
// current snapshot (published at most once per CurrentInterval). It never
// blocks on the network.
func (p *Publisher) UpdateCurrent(r contract.Reading) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current[r.Sensor] = r
	p.dirty = true
}

// Current returns the sensors of the current snapshot (sorted ids).
func (p *Publisher) Current() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.current))
	for id := range p.current {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// SetSensors replaces the configured sensor ids (after a config reload):
// the next status message lists them, and the retained current snapshot
// drops sensors no longer configured, so a removed sensor's last reading
// is not shown as live.
func (p *Publisher) SetSensors(ids []string) {
	keep := make(map[string]bool, len(ids))
	for _, id := range ids {
		keep[id] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opts.Sensors = append([]string(nil), ids...)
	for id := range p.current {
		if !keep[id] {
			delete(p.current, id)
			p.dirty = true
		}
	}
}

func (p *Publisher) setLink(f func(*Link)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.link)
}

// Run connects, publishes and reconnects (capped exponential backoff with
// jitter) until ctx ends; then it publishes status offline (retained),
// disconnects and returns nil.
func (p *Publisher) Run(ctx context.Context) error {
	backoff := p.opts.BackoffMin
	for {
		c, lost, err := p.connect(ctx)
		if err == nil {
			backoff = p.opts.BackoffMin
			err = p.session(ctx, c, lost)
			if ctx.Err() != nil {
				if !errors.Is(err, errStopped) { // session did not get to its own shutdown
					p.goOffline(c, time.Now().Add(p.opts.PublishTimeout))
				}
				return nil
			}
			// A DISCONNECT would suppress the broker's LWT; if the link
			// still carries anything, say offline ourselves (bounded wait).
			// Not after a PUBACK timeout: the link has just shown it
			// carries nothing, and the wait would only delay the reconnect
			// (M1); the broker's LWT says offline.
			if !errors.Is(err, ErrPubackTimeout) {
				ctx1, cancel := context.WithTimeout(ctx, time.Second)
				_ = p.publishWait(ctx1, c, p.Topic(contract.KindStatus), true, p.statusPayload(contract.StateOffline))
				cancel()
			}
			c.Disconnect(0)
		}
		if ctx.Err() != nil {
			return nil
		}
		p.log.Warn("mqtt link down", "err", err, "retry_in", backoff)
		p.setLink(func(l *Link) {
			if l.Connected {
				l.Since = time.Now()
			}
			l.Connected, l.InFlight, l.LastError = false, 0, err.Error()
			if l.Broker == "" {
				l.Broker = strings.Join(p.opts.Brokers, ",") // tried, in order
			}
		})
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, p.opts.BackoffMax)
	}
}

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

func (p *Publisher) connect(ctx context.Context) (mqtt.Client, <-chan error, error) {
	lost := make(chan error, 1)
	var tried sync.Mutex
	var broker string
	o := mqtt.NewClientOptions().
		SetClientID(p.opts.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetKeepAlive(p.opts.KeepAlive).
		SetPingTimeout(min(p.opts.KeepAlive, 10*time.Second)).
		SetConnectTimeout(p.opts.ConnectTimeout).
		SetWriteTimeout(p.opts.PublishTimeout).
		SetBinaryWill(p.Topic(contract.KindStatus), p.statusPayload(contract.StateOffline), 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- fmt.Errorf("connection lost: %w", err):
			default:
			}
		}).
		SetConnectionAttemptHandler(func(u *url.URL, t *tls.Config) *tls.Config {
			tried.Lock()
			broker = u.Redacted()
			tried.Unlock()
			return t
		})
	for _, b := range p.opts.Brokers {
		o.AddBroker(b)
	}
	if p.opts.TLS != nil {
		o.SetTLSConfig(p.opts.TLS.Clone())
	}
	if p.opts.Username != "" {
		o.SetUsername(p.opts.Username)
	}
	if p.opts.PasswordFile != "" {
		pw, err := os.ReadFile(p.opts.PasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("mqtt: read password_file: %w", err)
		}
		o.SetPassword(strings.TrimRight(string(pw), "\r\n"))
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.Disconnect(0)
		return nil, nil, ctx.Err()
	case <-time.After(p.opts.ConnectTimeout*time.Duration(len(p.opts.Brokers)) + time.Second):
		c.Disconnect(0)
		return nil, nil, fmt.Errorf("mqtt connect %s: timed out", strings.Join(p.opts.Brokers, ","))
	}
	tried.Lock()
	url := broker
	tried.Unlock()
	if err := tok.Error(); err != nil {
		return nil, nil, fmt.Errorf("mqtt connect %s: %w", strings.Join(p.opts.Brokers, ","), err)
	}
	p.log.Info("mqtt connected", "broker", url, "client_id", p.opts.ClientID)
	p.setLink(func(l *Link) { *l = Link{Connected: true, Broker: url, Since: time.Now()} })
	return c, lost, nil
}

type flight struct {
	msg store.Message
	tok mqtt.Token
	at  time.Time
}

// session runs one connection: status online, then the ordered drain.
// It returns the reason the connection must be dropped.
func (p *Publisher) session(ctx context.Context, c mqtt.Client, lost <-chan error) error {
	if err := p.publishWait(ctx, c, p.Topic(contract.KindStatus), true, p.statusPayload(contract.StateOnline)); err != nil {
		return fmt.Errorf("publish status online: %w", err)
	}
	p.markRetained()
	p.publishRetained(c)
	// Telemetry committed up to now was buffered while there was no live
	// session: messages carrying any of it are "historical".
	liveAfter, err := p.st.LastID(store.Telemetry)
	if err != nil {
		return fmt.Errorf("read buffer: %w", err)
	}
	sent := map[store.Stream]uint64{} // highest seq published on this connection
	var inflight []flight
	inflightBytes := 0
	var nextSend time.Time // pacing: earliest time of the next publish (RateBytes)
	var pace <-chan time.Time
	tick := time.NewTicker(CurrentInterval)
	defer tick.Stop()
	storeRetry := (<-chan time.Time)(nil)
	for {
		// Fill the window, highest-priority stream first, within the
		// message and byte windows and the rate.
		for storeRetry == nil && pace == nil && len(inflight) < p.opts.Window {
			if wait := time.Until(nextSend); p.opts.RateBytes > 0 && wait > 0 {
				pace = time.After(wait)
				break
			}
			m, ok, err := p.next(sent, liveAfter)
			if err != nil {
				p.log.Error("buffer read failed; retrying", "err", err)
				storeRetry = time.After(time.Second)
				break
			}
			if !ok {
				break
			}
			if len(inflight) > 0 && inflightBytes+len(m.Payload) > p.opts.WindowBytes {
				break // stays in the outbox; sent again once the window has room
			}
			tok := c.Publish(p.Topic(string(m.Stream)), 1, false, m.Payload)
			now := time.Now()
			inflight = append(inflight, flight{msg: m, tok: tok, at: now})
			inflightBytes += len(m.Payload)
			sent[m.Stream] = m.Seq
			if p.opts.RateBytes > 0 {
				if nextSend.Before(now) {
					nextSend = now
				}
				nextSend = nextSend.Add(time.Duration(len(m.Payload)) * time.Second / time.Duration(p.opts.RateBytes))
			}
		}
		p.setLink(func(l *Link) { l.InFlight = len(inflight) })

		var done <-chan struct{}
		var timeout <-chan time.Time
		if len(inflight) > 0 {
			done = inflight[0].tok.Done()
			timeout = time.After(time.Until(inflight[0].at.Add(p.opts.PublishTimeout)))
		}
		select {
		case <-ctx.Done():
			p.stop(c, inflight)
			return errStopped
		case err := <-lost:
			return err
		case <-done:
			f := inflight[0]
			if err := f.tok.Error(); err != nil {
				return fmt.Errorf("publish %s seq %d: %w", f.msg.Stream, f.msg.Seq, err)
			}
			if err := p.st.Ack(f.msg.Stream, f.msg.Seq); err != nil {
				// Not acked in the file: it is sent again later (a repeat).
				p.log.Error("buffer ack failed", "stream", f.msg.Stream, "seq", f.msg.Seq, "err", err)
			}
			inflightBytes -= len(f.msg.Payload)
			inflight = inflight[1:]
		case <-pace:
			pace = nil
		case <-timeout:
			f := inflight[0]
			return fmt.Errorf("publish %s seq %d: %w", f.msg.Stream, f.msg.Seq, ErrPubackTimeout)
		case <-p.st.Notify():
		case <-storeRetry:
			storeRetry = nil
		case <-tick.C:
			p.publishCurrent(c)
		case <-p.retainedCh:
			p.publishRetained(c)
		}
	}
}

// errStopped is returned by session after its shutdown (stop) is done.
var errStopped = errors.New("publisher stopped")

// stop ends a session at shutdown within one PublishTimeout in all: it
// waits for the PUBACKs of the messages still in flight and acks them (so
// a clean stop leaves no repeats behind), then publishes the retained
// offline status and disconnects. If the PUBACKs do not come by the
// deadline the link is dead: publishing offline into it would only wait
// again (M1), so it disconnects at once and the broker's LWT says offline.
// Unacked messages stay in the outbox for the next run.
func (p *Publisher) stop(c mqtt.Client, inflight []flight) {
	deadline := time.Now().Add(p.opts.PublishTimeout)
	if p.settle(inflight, deadline) {
		p.goOffline(c, deadline)
		return
	}
	p.log.Warn("shutdown: no PUBACK from the broker before the deadline; unacknowledged messages stay buffered, the broker's LWT will say offline",
		"in_flight", len(inflight), "timeout", p.opts.PublishTimeout)
	c.Disconnect(0)
	p.setLink(func(l *Link) { l.Connected, l.Since, l.InFlight = false, time.Now(), 0 })
}

// settle waits until deadline for the PUBACKs of messages in flight and
// acks them in the buffer. It reports whether every one came.
func (p *Publisher) settle(inflight []flight, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for _, f := range inflight {
		select {
		case <-f.tok.Done():
		case <-timer.C:
			return false
		}
		if f.tok.Error() != nil {
			return false
		}
		if err := p.st.Ack(f.msg.Stream, f.msg.Seq); err != nil {
			p.log.Error("buffer ack failed", "stream", f.msg.Stream, "seq", f.msg.Seq, "err", err)
		}
	}
	return true
}

// next returns the next message to publish on this connection: first an
// unacknowledged outbox message after the last one sent, else a newly
// formed one; alarms before events before telemetry. Telemetry items with
// an ID up to liveAfter were buffered before this session.
func (p *Publisher) next(sent map[store.Stream]uint64, liveAfter uint64) (store.Message, bool, error) {
	for _, s := range store.Streams {
		out, err := p.st.Outbox(s, sent[s], 1)
		if err != nil {
			return store.Message{}, false, err
		}
		if len(out) > 0 {
			return out[0], true, nil
		}
		maxItems, maxBytes := 1, 0
		if s == store.Telemetry {
			maxItems, maxBytes = p.opts.BatchMax, p.opts.BatchBytes
		}
		m, ok, err := p.st.Form(s, maxItems, maxBytes, p.build(s, liveAfter))
		if err != nil || ok {
			return m, ok, err
		}
	}
	return store.Message{}, false, nil
}

// build returns the BuildFunc that encodes a message of stream s. Buffered
// telemetry items are encoded contract.Reading objects; alarm and event
// items are encoded contract.Alarm / contract.Event bodies completed here.
//
// The historical flag (contract rule): a telemetry message is historical
// when it carries at least one reading that was committed to the buffer
// before the current broker session was established, i.e. buffered while
// the link was down or the agent was not running (its item ID is at most
// liveAfter, the last ID when the session came up). Readings sampled during
// a live session are not historical, even when they wait behind a draining
// backlog. The rule uses the buffer's commit order, not the wall clock, so
// a clock step cannot flip it. A message formed once is sent again
// byte-for-byte after a reconnect (same seq, same flag).
func (p *Publisher) build(s store.Stream, liveAfter uint64) store.BuildFunc {
	return func(seq uint64, items []store.Item) ([]byte, error) {
		switch s {
		case store.Telemetry:
			t := contract.Telemetry{V: contract.Version, Agent: p.opts.Agent, Site: p.opts.Site, Seq: seq,
				Historical: items[0].ID <= liveAfter}
			for _, it := range items {
				t.Readings = append(t.Readings, json.RawMessage(it.Data))
			}
			return contract.Marshal(t)
		case store.Alarm:
			var a contract.Alarm
			if err := json.Unmarshal(items[0].Data, &a); err != nil {
				return nil, fmt.Errorf("decode buffered alarm: %w", err)
			}
			a.V, a.Seq, a.Agent, a.Site = contract.Version, seq, p.opts.Agent, p.opts.Site
			return contract.Marshal(a)
		default:
			var e contract.Event
			if err := json.Unmarshal(items[0].Data, &e); err != nil {
				return nil, fmt.Errorf("decode buffered event: %w", err)
			}
			e.V, e.Seq, e.Agent, e.Site = contract.Version, seq, p.opts.Agent, p.opts.Site
			return contract.Marshal(e)
		}
	}
}

// publishCurrent sends the retained snapshot if a reading changed. It does
// not wait for the PUBACK: a lost snapshot is replaced within a second.
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
