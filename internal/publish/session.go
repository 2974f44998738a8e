package publish

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// Run connects, publishes and reconnects until ctx ends; then it
// publishes status offline (retained), disconnects and returns nil.
//
// Reconnects follow a capped exponential back-off with jitter (backoff):
// the first attempt after a loss comes within BackoffMin (1 s by default),
// each next one within twice the previous ceiling, none later than
// BackoffMax (mqtt.reconnect_max) after the previous failure, so a
// buffered alarm leaves within about BackoffMax of the broker's return.
func (p *Publisher) Run(ctx context.Context) error {
	bo := newBackoff(p.opts.BackoffMin, p.opts.BackoffMax, rand.Int64N)
	for {
		c, lost, err := p.connect(ctx)
		failedAt := time.Now()
		if err == nil {
			bo.reset()
			err = p.session(ctx, c, lost)
			failedAt = time.Now()
			if ctx.Err() != nil {
				if !errors.Is(err, errStopped) { // session did not get to its own shutdown
					p.goOffline(c, time.Now().Add(p.opts.PublishTimeout))
				}
				return nil
			}
			// A DISCONNECT would suppress the broker's LWT; if the link
			// still carries anything, say offline ourselves (bounded wait,
			// counted in the back-off). Not on a lost connection (nothing
			// to carry it) nor after a PUBACK timeout: the link has just
			// shown it carries nothing, and the wait would only delay the
			// reconnect (M1); the broker's LWT says offline.
			if !errors.Is(err, ErrPubackTimeout) && !errors.Is(err, errLost) {
				ctx1, cancel := context.WithTimeout(ctx, time.Second)
				_ = p.publishWait(ctx1, c, p.Topic(contract.KindStatus), true, p.offlinePayload(time.Now(), false))
				cancel()
			}
			c.Disconnect(0)
		}
		if ctx.Err() != nil {
			return nil
		}
		msg := config.RedactURL(err.Error()) // paho's and our texts may hold a broker URL
		retryAt := failedAt.Add(bo.next())
		p.log.Warn("mqtt link down", "err", msg, "retry_in", time.Until(retryAt).Round(time.Millisecond))
		p.setLink(func(l *Link) {
			if l.Connected {
				l.Since = failedAt
			}
			l.Connected, l.InFlight, l.LastError = false, 0, msg
			if l.Broker == "" {
				l.Broker = p.brokerList() // tried, in order
			}
		})
		t := time.NewTimer(time.Until(retryAt))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// errLost wraps the error of a connection paho reports lost.
var errLost = errors.New("connection lost")

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
		SetBinaryWill(p.Topic(contract.KindStatus), p.willPayload(), 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			p.linkLost.Store(true)
			select {
			case lost <- fmt.Errorf("%w: %w", errLost, err):
			default:
			}
		}).
		SetConnectionAttemptHandler(func(u *url.URL, t *tls.Config) *tls.Config {
			tried.Lock()
			broker = config.RedactURL(u.String())
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
		return nil, nil, fmt.Errorf("mqtt connect %s: timed out", p.brokerList())
	}
	tried.Lock()
	url := broker
	tried.Unlock()
	if err := tok.Error(); err != nil {
		return nil, nil, fmt.Errorf("mqtt connect %s: %w", p.brokerList(), err)
	}
	p.log.Info("mqtt connected", "broker", url, "client_id", p.opts.ClientID)
	p.setLink(func(l *Link) { *l = Link{Connected: true, Broker: url, Since: time.Now()} })
	return c, lost, nil
}

// brokerList is the brokers as errors, logs and Link.Broker show them:
// in the order tried, comma-separated, passwords redacted.
func (p *Publisher) brokerList() string {
	shown := make([]string, len(p.opts.Brokers))
	for i, b := range p.opts.Brokers {
		shown[i] = config.RedactURL(b)
	}
	return strings.Join(shown, ",")
}

// flight is a message published and waiting for its PUBACK: tok, then
// more (the v2 publish of a telemetry message sent in both encodings, nil
// otherwise). It is acknowledged in the buffer when both came.
type flight struct {
	msg  store.Message
	tok  mqtt.Token
	more mqtt.Token
	at   time.Time
}

// send publishes a stream message: a telemetry message on …/telemetry,
// …/telemetry/v2 or both, as it was formed (contract.SplitTelemetry), so
// that a message formed under another mqtt.telemetry is sent again as it
// was; any other on its stream's topic.
func (p *Publisher) send(c mqtt.Client, m store.Message) flight {
	if m.Stream != store.Telemetry {
		return flight{msg: m, tok: c.Publish(p.Topic(string(m.Stream)), 1, false, m.Payload)}
	}
	v1, v2 := contract.SplitTelemetry(m.Payload)
	f := flight{msg: m}
	if v1 != nil {
		f.tok = c.Publish(p.Topic(contract.KindTelemetry), 1, false, v1)
	}
	if v2 != nil {
		t := c.Publish(p.Topic(contract.KindTelemetryV2), 1, false, v2)
		if f.tok == nil {
			f.tok = t
		} else {
			f.more = t
		}
	}
	if f.tok == nil { // not a payload any encoder writes; sent as it is
		f.tok = c.Publish(p.Topic(contract.KindTelemetry), 1, false, m.Payload)
	}
	return f
}

// session runs one connection: the status (online or degraded), then the
// ordered drain. It returns the reason the connection must be dropped.
func (p *Publisher) session(ctx context.Context, c mqtt.Client, lost <-chan error) error {
	if err := p.publishWait(ctx, c, p.Topic(contract.KindStatus), true, p.statusPayload()); err != nil {
		return fmt.Errorf("publish status: %w", err)
	}
	p.markRetained()
	p.publishRetained(c)
	p.resendCurrent()
	p.publishCurrent(c)
	// Telemetry committed up to now was buffered while there was no live
	// session: messages carrying any of it are "historical".
	p.linkLost.Store(false)
	liveAfter, err := p.st.LastID(store.Telemetry)
	if err != nil {
		return fmt.Errorf("read buffer: %w", err)
	}
	sent := map[store.Stream]uint64{} // highest seq published on this connection
	var inflight []flight
	inflightBytes := 0
	var nextSend time.Time // pacing: earliest time of the next publish (RateBytes)
	var pace <-chan time.Time
	cur := newCurrentTimer()
	defer cur.t.Stop()
	storeRetry := (<-chan time.Time)(nil)
	for {
		// Fill the window, highest-priority stream first, within the
		// message and byte windows and the rate. A Form may wait for the
		// buffer's commit window (Options.CommitInterval, 200 ms by
		// default): with steady readings every Form finds records waiting
		// for it, so the pass ends (cut) once it has run fillPassMax, and
		// the select below serves PUBACKs, their timeouts, a stop and a
		// lost link before the next pass.
		passStart, cut := time.Now(), false
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
			f := p.send(c, m)
			now := time.Now()
			f.at = now
			inflight = append(inflight, f)
			inflightBytes += len(m.Payload)
			sent[m.Stream] = m.Seq
			if p.opts.RateBytes > 0 {
				if nextSend.Before(now) {
					nextSend = now
				}
				nextSend = nextSend.Add(time.Duration(len(m.Payload)) * time.Second / time.Duration(p.opts.RateBytes))
			}
			if time.Since(passStart) >= fillPassMax {
				cut = true
				break
			}
		}
		p.setLink(func(l *Link) { l.InFlight = len(inflight) })
		cur.arm(p)

		var done <-chan struct{}
		var timeout <-chan time.Time
		if len(inflight) > 0 {
			done = inflight[0].tok.Done()
			select {
			case <-done: // acknowledged already (during a long pass): no timeout to race it
			default:
				timeout = time.After(time.Until(inflight[0].at.Add(p.opts.PublishTimeout)))
			}
		}
		var again <-chan struct{} // a cut pass goes on once what is ready is served
		if cut {
			again = closedCh
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
			if f.more != nil { // its v2 twin is still to be acknowledged
				inflight[0].tok, inflight[0].more = f.more, nil
				break
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
		case <-again:
		case <-storeRetry:
			storeRetry = nil
		case <-cur.t.C:
			cur.fired()
			p.publishCurrent(c)
		case <-p.retainedCh:
			p.publishStatus(c)
			p.publishRetained(c)
			p.publishCurrent(c)
		}
	}
}

// fillPassMax bounds one pass of a session's window fill: past it, the
// pass ends after its current message, so PUBACKs, their timeouts, a stop
// and a lost link are served at least every fillPassMax plus one Form.
const fillPassMax = 20 * time.Millisecond

// closedCh is always ready.
var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

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
		for _, tok := range []mqtt.Token{f.tok, f.more} {
			if tok == nil {
				continue
			}
			select {
			case <-tok.Done():
			case <-timer.C:
				return false
			}
			if tok.Error() != nil {
				return false
			}
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
