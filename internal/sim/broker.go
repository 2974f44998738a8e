package sim

import (
	"context"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is an embedded MQTT broker (mochi-mqtt, MQTT 3.1.1 and 5) with
// allow-all auth on one plain TCP listener, for demos and tests. It is not
// a production broker: no TLS, no passwords, nothing persisted.
type Broker struct {
	srv *mqtt.Server
	tcp *listeners.TCP
}

// StartBroker starts an embedded broker listening on addr ("host:port";
// port 0 picks a free one). log receives the broker's own warnings and
// errors (nil: none); its info chatter is dropped.
// Stop it with Close.
func StartBroker(addr string, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = slog.New(warnOnly{log.Handler()})
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: log})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: allow-all auth: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: listen %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded broker: serve: %w", err)
	}
	return &Broker{srv: srv, tcp: tcp}, nil
}

// Addr returns the broker's listening "host:port".
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL returns the broker's address as a client broker URL, "tcp://host:port".
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Close disconnects every client and stops the broker.
func (b *Broker) Close() error {
	if err := b.srv.Close(); err != nil {
		return fmt.Errorf("embedded broker: close: %w", err)
	}
	return nil
}

// allowAll is a mochi hook that lets every client connect and use every
// topic. (mochi's own auth.AllowHook would pull in another YAML module.)
type allowAll struct{ mqtt.HookBase }

// ID names the hook.
func (h *allowAll) ID() string { return "allow-all" }

// Provides reports the two auth events the hook answers.
func (h *allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate accepts every client.
func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck allows every topic.
func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// warnOnly passes only records at Warn level or above to its handler.
type warnOnly struct{ slog.Handler }

// Enabled reports whether l is at least Warn and enabled by the wrapped handler.
func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

// WithAttrs keeps the filter on the derived handler.
func (w warnOnly) WithAttrs(a []slog.Attr) slog.Handler { return warnOnly{w.Handler.WithAttrs(a)} }

// WithGroup keeps the filter on the derived handler.
func (w warnOnly) WithGroup(n string) slog.Handler { return warnOnly{w.Handler.WithGroup(n)} }
