package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits of the control socket's clients. A member of group hazmon could
// otherwise open connections until the agent runs out of file descriptors,
// and then MQTT reconnects and bus connections fail.
const (
	// MaxConns is the most connections the agent keeps open at once. When
	// all are taken, the oldest that has not sent a request (or waits idle
	// for its next one) is closed to make room; if every one is busy with
	// a request (an export, an output test) the new client is answered
	// 503 "control socket busy" at once.
	MaxConns = 16
	// IdleTimeout closes a connection that sends no request header within
	// it, or no next request on a kept-alive connection.
	IdleTimeout = 5 * time.Second
	// maxRefusing bounds the busy answers being written at once; beyond
	// it a connection is closed without one.
	maxRefusing = 16
	// refuseTimeout bounds reading the request of a refused connection,
	// and then writing it the busy answer.
	refuseTimeout = 250 * time.Millisecond
)

// limitListener admits at most max connections (see MaxConns). Server
// sets it as its http.Server's listener and ConnState hook. Closing it
// waits for the busy answers in progress.
type limitListener struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[*limitConn]http.ConnState
	next  uint64 // admission order

	refusing chan struct{} // a slot per busy answer in progress
	wg       sync.WaitGroup
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, max: max, conns: map[*limitConn]http.ConnState{}, refusing: make(chan struct{}, maxRefusing)}
}

// limitConn is an admitted connection; Close frees its place.
type limitConn struct {
	net.Conn
	l     *limitListener
	order uint64
	once  sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return err
}

// Accept admits the next connection, making room by closing the oldest
// idle one, or answers it busy when every admitted one is in a request.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		var victim *limitConn
		if len(l.conns) >= l.max {
			victim = l.oldestIdle()
			if victim == nil {
				n := len(l.conns)
				l.mu.Unlock()
				l.refuse(c, n)
				continue
			}
			delete(l.conns, victim)
		}
		l.next++
		lc := &limitConn{Conn: c, l: l, order: l.next}
		l.conns[lc] = http.StateNew
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
		}
		return lc, nil
	}
}

// oldestIdle is the admitted connection longest without a request in
// progress (new, or idle between requests), nil if all are busy. l.mu is
// held.
func (l *limitListener) oldestIdle() *limitConn {
	var old *limitConn
	for c, st := range l.conns {
		if (st == http.StateNew || st == http.StateIdle) && (old == nil || c.order < old.order) {
			old = c
		}
	}
	return old
}

// connState is the http.Server's ConnState hook: it tracks which admitted
// connections are in a request.
func (l *limitListener) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, open := l.conns[lc]; !open {
		return
	}
	if st == http.StateClosed || st == http.StateHijacked {
		delete(l.conns, lc)
		return
	}
	l.conns[lc] = st
}

// busyReply is the answer of a connection that is not admitted.
func busyReply(open int) []byte {
	body, _ := json.Marshal(errorBody{Error: fmt.Sprintf("control socket busy: %d requests in progress, the most the agent serves at once; try again", open), Kind: "busy"})
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n", len(body)+1, body)
}

// refuse answers c busy, after its request header, and closes it, in its
// own goroutine (owned by l, waited for by Close) within 2 × refuseTimeout;
// with maxRefusing answers already in progress it closes c at once.
func (l *limitListener) refuse(c net.Conn, open int) {
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() { <-l.refusing }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		// The answer goes after the request's header: an HTTP client that
		// gets a response before it has written its request takes it for
		// an unsolicited one and reports a broken connection instead (seen
		// under load).
		readHeader(c)
		_ = c.SetDeadline(time.Now().Add(refuseTimeout)) // a client that sent nothing still gets the answer
		if _, err := c.Write(busyReply(open)); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		// Read the rest the client is sending, so it is not cut off
		// mid-write (which it would report instead of the answer).
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<16))
	}()
}

// readHeader reads from c until the end of an HTTP request header (a
// blank line), 8 KiB, an error or c's deadline.
func readHeader(c net.Conn) {
	var buf [512]byte
	var tail []byte
	for n := 0; n < 8<<10; {
		k, err := c.Read(buf[:])
		tail = append(tail, buf[:k]...)
		if i := bytes.Index(tail, []byte("\r\n\r\n")); i >= 0 || err != nil {
			return
		}
		if len(tail) > 3 {
			tail = tail[len(tail)-3:]
		}
		n += k
	}
}

// Close closes the listener and waits for the busy answers in progress.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.wg.Wait()
	return err
}
