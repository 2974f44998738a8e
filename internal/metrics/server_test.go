package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The TCP listener serves what its WriteFunc writes with the exposition's
// content type, answers a failed scrape 500 and a scrape beyond
// MaxScrapes 503 at once, and Serve returns nil once its context ends.
func TestServer_ServesScrapesAndSheds(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, MaxScrapes)
	mode := make(chan string, 1) // what the next scrapes do: ok, fail or block
	mode <- "ok"
	write := func(ctx context.Context, w io.Writer) error {
		m := <-mode
		mode <- m
		switch m {
		case "fail":
			return errors.New("core not answering")
		case "block":
			entered <- struct{}{}
			<-release
		}
		_, err := io.WriteString(w, "hazmon_up 1\n")
		return err
	}
	srv, err := Listen("127.0.0.1:0", write, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	url := "http://" + srv.Addr().String() + "/metrics"
	get := func() (int, string, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}

	if code, ct, body := get(); code != 200 || ct != ContentType || body != "hazmon_up 1\n" {
		t.Errorf("scrape: %d %q %q", code, ct, body)
	}
	<-mode
	mode <- "fail"
	if code, _, body := get(); code != 500 || !strings.Contains(body, "core not answering") {
		t.Errorf("failed scrape: %d %q", code, body)
	}
	<-mode
	mode <- "block"
	results := make(chan int, MaxScrapes)
	for range MaxScrapes {
		go func() {
			resp, err := http.Get(url)
			if err != nil {
				results <- -1
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	for range MaxScrapes {
		<-entered
	}
	if code, _, body := get(); code != 503 || !strings.Contains(body, "busy") {
		t.Errorf("scrape beyond MaxScrapes: %d %q", code, body)
	}
	close(release)
	for range MaxScrapes {
		if c := <-results; c != 200 {
			t.Errorf("blocked scrape answered %d", c)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
