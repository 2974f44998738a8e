package control

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serveWith is serve with a backend and a hook that may change the
// server's limits before Serve.
func serveWith(t *testing.T, path string, b Backend, set func(*Server)) {
	t.Helper()
	srv, err := Listen(path, b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// dialIdle opens n connections to path that never send anything.
func dialIdle(t *testing.T, path string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for len(conns) < n {
		c, err := net.Dial("unix", path)
		if err != nil { // the listen backlog is full for a moment: let the agent accept
			time.Sleep(time.Millisecond)
			continue
		}
		conns = append(conns, c)
	}
	return conns
}

// A member of group hazmon holding thousands of idle connections: the
// agent keeps at most MaxConns of them open (its descriptors stay bounded,
// so its MQTT and bus connections still get theirs), and a technician's
// status still gets its answer at once.
func TestSocket_ManyIdleClientsKeepDescriptorsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.sock")
	serveWith(t, path, fixedBackend{st: Status{State: StateRunning, Agent: "gw-1"}}, nil)
	base := openFDs(t)

	const n = 2000
	conns := dialIdle(t, path, n)
	// Ours are n; the agent's (the same process here) are the rest.
	if agent := openFDs(t) - base - len(conns); agent > MaxConns+maxRefusing+4 {
		t.Errorf("agent holds %d descriptors for %d idle clients, want at most %d", agent, n, MaxConns+maxRefusing+4)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	st, err := NewClient(path).Status(ctx)
	if err != nil || st.Agent != "gw-1" {
		t.Fatalf("status beside %d idle clients: %+v, %v", n, st, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("status took %s beside %d idle clients", d, n)
	}
	// The oldest idle connection was closed to make room: it reads EOF.
	_ = conns[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("oldest idle connection: read %v, want EOF", err)
	}
}

// blockingBackend's Status waits until release is closed, counting the
// requests in progress.
type blockingBackend struct {
	fixedBackend
	release chan struct{}
	busy    *atomic.Int32
}

func (b blockingBackend) Status(ctx context.Context) (Status, error) {
	b.busy.Add(1)
	defer b.busy.Add(-1)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return b.st, nil
}

// When every connection the agent keeps is in a request, a new client is
// told so at once, plainly, and is served again once one ends.
func TestSocket_AllBusyGivesAClearRefusal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.sock")
	b := blockingBackend{fixedBackend: fixedBackend{st: Status{Agent: "gw-1"}}, release: make(chan struct{}), busy: &atomic.Int32{}}
	serveWith(t, path, b, nil)
	c := NewClient(path)
	var wg sync.WaitGroup
	defer wg.Wait()
	var once sync.Once
	release := func() { once.Do(func() { close(b.release) }) }
	defer release()
	for range MaxConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Status(context.Background()); err != nil {
				t.Errorf("held status: %v", err)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.busy.Load() < MaxConns {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests in progress", b.busy.Load(), MaxConns)
		}
		time.Sleep(5 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Status(ctx)
	if err == nil || !strings.Contains(err.Error(), "control socket busy") {
		t.Fatalf("status with every connection busy: %v, want a busy refusal", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %s", d)
	}
	release()
	wg.Wait()
	if st, err := c.Status(context.Background()); err != nil || st.Agent != "gw-1" {
		t.Errorf("status after the busy requests ended: %+v, %v", st, err)
	}
}

// A connection that sends no request, or no next one after a request on a
// kept-alive connection, is closed after the idle timeout.
func TestSocket_IdleConnectionClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.sock")
	const idle = 200 * time.Millisecond
	serveWith(t, path, fixedBackend{st: Status{Agent: "gw-1"}}, func(s *Server) { s.idle = idle })

	silent := dialIdle(t, path, 1)[0]
	start := time.Now()
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("silent connection: read %v, want EOF after %s", err, idle)
	}
	if d := time.Since(start); d < idle/2 || d > 3*time.Second {
		t.Errorf("silent connection closed after %s, want about %s", d, idle)
	}

	kept := dialIdle(t, path, 1)[0]
	if _, err := io.WriteString(kept, "GET /v1/status HTTP/1.1\r\nHost: hazmon\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = kept.SetReadDeadline(time.Now().Add(5 * time.Second))
	rd := bufio.NewReader(kept)
	line, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("kept-alive request: %q, %v", line, err)
	}
	start = time.Now()
	if _, err := io.Copy(io.Discard, rd); err != nil { // the rest of the reply, then EOF when closed
		t.Errorf("kept-alive connection: %v, want EOF after %s idle", err, idle)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("kept-alive connection closed after %s idle, want about %s", d, idle)
	}
}
