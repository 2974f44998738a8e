package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/app"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
)

// logSink collects an in-process agent's log, safe for its goroutines.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runAgentFile runs an in-process agent on the config file path with its
// log (debug level) in the returned sink, until the test ends.
func runAgentFile(t *testing.T, path string) *logSink {
	t.Helper()
	l, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logSink{}
	a, err := app.New(l.Config, app.Options{ConfigPath: path, DrainTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("agent did not stop within 30s")
		}
	})
	return logs
}

// A password given in the broker URL and in password_file appears nowhere
// a technician or a log reader sees it: validate, config show, the agent's
// log (the "mqtt link down" line and its error), hazmon status (text and
// JSON) connected and with the link down, and buffer export.
func TestSecrets_PasswordAppearsNowhere(t *testing.T) {
	const urlSecret, fileSecret = "url-s3cret", "file-s3cret"
	broker := brokertest.Start(t)
	addr := mbslavetest.StartTCP(t, testBank())
	dir := t.TempDir()
	pw := filepath.Join(dir, "mqtt.password")
	if err := os.WriteFile(pw, []byte(fileSecret+"\n"), 0o644); err != nil { // world-readable: a warning
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "h.sock")
	brokerURL := strings.Replace(broker.URL, "tcp://", "tcp://gw:"+urlSecret+"@", 1)
	shown := strings.Replace(broker.URL, "tcp://", "tcp://gw:REDACTED@", 1)
	cfg := filepath.Join(dir, "hazmon.yaml")
	yml := fmt.Sprintf(`agent: {id: gw-sec, site: site-0001, data_dir: %s}
mqtt: {brokers: [%q], username: gw, password_file: %s, keepalive: 5s, connect_timeout: 1s}
control: {socket: %s}
buses:
  - {name: B, protocol: tcp, address: %q, timeout: 1s}
sensors:
  - {id: CH4-101, type: methane, bus: B, slave: 1, table: holding, address: 0, format: uint16, scale: 0.01, unit: "%%CH4", interval: 200ms, range: [0, 4]}
`, filepath.Join(dir, "data"), brokerURL, pw, sock, addr)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{} // what each place showed
	check := func() {
		t.Helper()
		for what, text := range seen {
			for _, s := range []string{urlSecret, fileSecret} {
				if strings.Contains(text, s) {
					t.Errorf("%s shows the password %q:\n%s", what, s, text)
				}
			}
		}
	}

	code, out, errs := hz(t, "", "validate", "-c", cfg)
	seen["validate"] = out + errs
	if code != 0 || !strings.Contains(out, "mqtt.password_file: "+pw+" is readable by every user") {
		t.Errorf("validate: exit %d, want the world-readable warning:\n%s%s", code, out, errs)
	}
	code, out, errs = hz(t, "", "config", "show", "-c", cfg)
	seen["config show"] = out + errs
	mustContain(t, "config show", out, shown)
	if code != 0 {
		t.Errorf("config show: exit %d", code)
	}

	logs := runAgentFile(t, cfg)
	c := control.NewClient(sock)
	waitFor(t, "MQTT link up", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && st.MQTT.Connected
	})
	_, seen["status (connected)"], _ = hz(t, "", "status", "--socket", sock)
	_, seen["status --json (connected)"], _ = hz(t, "", "status", "--socket", sock, "--json")
	mustContain(t, "status", seen["status (connected)"], "MQTT    connected "+shown)

	broker.Stop()
	// Not only the lost connection: a reconnect that fails, whose error
	// names the brokers tried.
	waitFor(t, "a failed reconnect in status and log", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && !st.MQTT.Connected && strings.Contains(st.MQTT.LastError, "mqtt connect ") &&
			strings.Contains(logs.String(), `msg="mqtt link down" component=mqtt err="mqtt connect `)
	})
	waitFor(t, "readings buffered while the link is down", func() bool {
		st, err := c.BufferStats(context.Background())
		return err == nil && st.Pending > 0
	})
	// The agent's own answer, not only what this CLI makes of it.
	if st, err := c.Status(context.Background()); err == nil {
		raw, _ := json.Marshal(st)
		seen["the agent's status over the socket"] = string(raw)
	} else {
		t.Fatal(err)
	}
	_, seen["status (link down)"], _ = hz(t, "", "status", "--socket", sock)
	_, seen["status --json (link down)"], _ = hz(t, "", "status", "--socket", sock, "--json")
	mustContain(t, "status", seen["status (link down)"], "MQTT    DOWN "+shown)
	_, seen["buffer export"], _ = hz(t, "", "buffer", "export", "--socket", sock, "--format", "jsonl")
	seen["agent log"] = logs.String()
	mustContain(t, "agent log", seen["agent log"], "mqtt link down", shown)
	check()
}
