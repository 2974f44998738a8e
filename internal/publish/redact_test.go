package publish

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// syncBuffer is a log sink safe for the publisher's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runLogged runs a Publisher for broker URL u with a password file, its
// log in the returned buffer, until the test ends.
func runLogged(t *testing.T, u string) (*Publisher, *syncBuffer) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "mqtt.password")
	if err := os.WriteFile(pw, []byte("file-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	p, err := New(openStore(t), Options{Brokers: []string{u}, Username: "gw", PasswordFile: pw,
		Site: "site-0001", Agent: "gw-01", ConnectTimeout: time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, logs
}

func noSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{"url-s3cret", "file-s3cret"} {
		if strings.Contains(text, s) {
			t.Errorf("%s shows the password %q:\n%s", what, s, text)
		}
	}
}

// A password in the broker URL never reaches the "mqtt link down" log
// line, the connect error, or the link the agent's status shows.
func TestPublisher_LinkDownNeverShowsThePassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused
	p, logs := runLogged(t, "tcp://gw:url-s3cret@"+addr)
	deadline := time.Now().Add(wait)
	for !strings.Contains(logs.String(), "mqtt link down") || p.Link().LastError == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no link-down: %s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	l := p.Link()
	noSecret(t, "log", logs.String())
	noSecret(t, "Link.LastError", l.LastError)
	noSecret(t, "Link.Broker", l.Broker)
	want := "tcp://gw:REDACTED@" + addr
	if l.Broker != want || !strings.Contains(l.LastError, "mqtt connect "+want) || !strings.Contains(logs.String(), want) {
		t.Errorf("link %+v, log:\n%s\nwant the broker shown as %s", l, logs.String(), want)
	}
}

// Connected, the link and the "mqtt connected" line show the broker
// redacted too.
func TestPublisher_ConnectedLinkNeverShowsThePassword(t *testing.T) {
	b := brokertest.Start(t)
	u := strings.Replace(b.URL, "tcp://", "tcp://gw:url-s3cret@", 1)
	p, logs := runLogged(t, u)
	deadline := time.Now().Add(wait)
	for !p.Link().Connected {
		if time.Now().After(deadline) {
			t.Fatalf("not connected: %s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	noSecret(t, "log", logs.String())
	if l := p.Link(); l.Broker != strings.Replace(b.URL, "tcp://", "tcp://gw:REDACTED@", 1) {
		t.Errorf("Link.Broker = %q", l.Broker)
	}
}
