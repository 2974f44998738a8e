package brokertest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP relay between a client and the broker that can silently
// drop traffic (a dead link without a reset, field case M1) or cut every
// connection at once (a network drop; the broker then publishes the LWT).
type Proxy struct {
	t         testing.TB
	ln        net.Listener
	target    string
	blackhole atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy relays 127.0.0.1:<free port> to target ("127.0.0.1:1883").
// It is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetBlackhole makes the relay read and discard everything in both
// directions (on) or forward again (off). Connections stay open.
func (p *Proxy) SetBlackhole(on bool) { p.blackhole.Store(on) }

// CutAll closes every relayed connection (both sides) without any MQTT
// DISCONNECT, as a network drop would.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Close stops accepting, cuts all connections and waits for the relays.
func (p *Proxy) Close() {
	p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.relay(c, up)
		go p.relay(up, c)
	}
}

func (p *Proxy) relay(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.blackhole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
