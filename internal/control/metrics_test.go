package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// The metrics are on the socket at /v1/metrics (the Client) and at
// /metrics (what a scraper or `curl --unix-socket` asks for), in the
// Prometheus text format with its content type; an agent that cannot
// gather them answers an error the Client turns back into its kind.
func TestSocket_MetricsRoutes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.sock")
	stop := serve(t, path)
	defer stop()
	c := NewClient(path)
	var sb strings.Builder
	if err := c.Metrics(context.Background(), &sb); err != nil || !strings.Contains(sb.String(), "\nhazmon_up 1\n") {
		t.Fatalf("Client.Metrics: %v %q", err, sb.String())
	}

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://hazmon/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != MetricsContentType || string(body) != sb.String() {
		t.Errorf("GET /metrics: %s %q %q", resp.Status, resp.Header.Get("Content-Type"), body)
	}

	// A backend that cannot gather the metrics.
	path2 := filepath.Join(t.TempDir(), "h2.sock")
	srv, err := Listen(path2, fixedBackend{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	sb.Reset()
	if err := NewClient(path2).Metrics(context.Background(), &sb); !errors.Is(err, ErrUnavailable) || sb.Len() != 0 {
		t.Errorf("failing backend: err %v, wrote %q", err, sb.String())
	}
}
