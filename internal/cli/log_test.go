package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/app"
	"github.com/hazmon/hazmon/internal/asynclog"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// stalledWriter is a stderr that takes nothing until unblock (journald
// stuck behind a slow SD card, a full pipe).
type stalledWriter struct {
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	buf     bytes.Buffer
}

func newStalledWriter() *stalledWriter { return &stalledWriter{release: make(chan struct{})} }

func (w *stalledWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *stalledWriter) unblock() { w.once.Do(func() { close(w.release) }) }

func (w *stalledWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// `hazmon run` with a stderr that takes nothing still starts, reads its
// sensors and answers on its socket; what it logged comes out once stderr
// drains (lines of the std log package too, rate-limited), and the last
// lines are flushed when it stops.
func TestRun_StalledStderrDoesNotHoldUpTheAgent(t *testing.T) {
	addr := mbslavetest.StartTCP(t, testBank())
	dir := t.TempDir()
	socket := filepath.Join(dir, "h.sock")
	cfg := filepath.Join(dir, "hazmon.yaml")
	yml := fmt.Sprintf(`agent: {id: gw-log, site: site-0001, data_dir: %s}
mqtt: {brokers: ["tcp://%s"], keepalive: 5s, connect_timeout: 1s}
control: {socket: %s}
buses:
  - {name: B, protocol: tcp, address: %q, timeout: 1s}
sensors:
  - {id: CH4-101, type: methane, bus: B, slave: 1, table: holding, address: 0, format: uint16, scale: 0.01, unit: "%%CH4", interval: 200ms, range: [0, 4]}
log: {level: info, format: text}
`, filepath.Join(dir, "data"), closedPort(t), socket, addr)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr := newStalledWriter()
	t.Cleanup(stderr.unblock)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stdout bytes.Buffer
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), &stdout, stderr) }()

	c := control.NewClient(socket)
	waitFor(t, "the agent running with CH4-101 read while stderr is stalled", func() bool {
		st, err := c.Status(context.Background())
		if err != nil || st.State != control.StateRunning {
			return false
		}
		for _, s := range st.Sensors {
			if s.ID == "CH4-101" && s.Value != nil && *s.Value == 0.52 {
				return true
			}
		}
		return false
	})
	for range 50 {
		log.Print("gpioioctl: input/output error") // as periph does on a failed read
	}

	stderr.unblock()
	waitFor(t, "the queued log lines on stderr", func() bool {
		return strings.Contains(stderr.String(), `msg="gpioioctl: input/output error" component=stdlog`)
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("run exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of cancel")
	}
	out := stderr.String()
	mustContain(t, "stderr", out, `msg="hazmon starting"`, `msg="hazmon running"`, `msg="hazmon stopped"`)
	if n := strings.Count(out, "gpioioctl: input/output error"); n != 1 {
		t.Errorf("the std log line came out %d times, want once (rate-limited):\n%s", n, out)
	}
	if strings.Contains(fmt.Sprintf("%T", log.Writer()), "asynclog") {
		t.Errorf("std log still redirected after run returned: %T", log.Writer())
	}
}

// The logger of `hazmon run` in json: a stalled stderr does not block a
// log call, and the dropped lines are reported in JSON once it drains.
func TestNewLogger_StalledStderrJSON(t *testing.T) {
	stderr := newStalledWriter()
	t.Cleanup(stderr.unblock)
	lg, lw := newLogger(stderr, config.Log{Level: "info", Format: "json"})
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := range asynclog.DefaultMaxLines + 100 {
			lg.Info("reading", "i", i)
			lg.Debug("not at level info")
		}
	}()
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		t.Fatal("log calls blocked on a stalled stderr")
	}
	if lw.Dropped() < 99 {
		t.Fatalf("dropped %d, want at least 99", lw.Dropped())
	}
	stderr.unblock()
	closeLog(lw)
	// Every line is JSON: the readings, and where lines were dropped (once,
	// or twice if a slot freed up during the flood) the dropped line.
	var readings, dropped uint64
	var last struct {
		Level, Msg string
		Dropped    uint64
	}
	for _, l := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		last.Msg = ""
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		switch {
		case last.Msg == "reading":
			readings++
		case last.Msg == asynclog.DroppedMsg && last.Level == "WARN":
			dropped += last.Dropped
		default:
			t.Fatalf("unexpected line %q", l)
		}
	}
	if last.Msg != asynclog.DroppedMsg || dropped != lw.Dropped() || readings+dropped != asynclog.DefaultMaxLines+100 {
		t.Fatalf("%d readings and %d dropped reported (Dropped() = %d), last %q: want the JSON dropped line last and every line counted",
			readings, dropped, lw.Dropped(), last.Msg)
	}
	if strings.Contains(stderr.String(), "not at level info") {
		t.Error("debug lines written at level info")
	}
}

// hazmon status shows the log lines the agent dropped (one line, only
// when there are some); --json always has them.
func TestStatus_ShowsDroppedLogLines(t *testing.T) {
	ag := startAgentOpts(t, "tcp://"+closedPort(t), "", "", func(o *app.Options) {
		o.LogDropped = func() uint64 { return 7 }
	})
	code, out, errs := hz(t, "", "status", "--socket", ag.socket)
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errs)
	}
	mustContain(t, "status", out, "\nLOG     7 line(s) dropped: the log sink (stderr/journald) stalled\n")
	checkWidth(t, "status", out)
	code, out, _ = hz(t, "", "status", "--socket", ag.socket, "--json")
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Log.Dropped != 7 {
		t.Fatalf("status --json exit %d, log %+v:\n%s", code, st.Log, out)
	}

	st.Log.Dropped = 0
	if r := strings.Join(renderStatus(st, Width, 0), "\n"); strings.Contains(r, "LOG ") {
		t.Errorf("a LOG line with nothing dropped:\n%s", r)
	}
	if b, _ := json.Marshal(control.Status{}); !strings.Contains(string(b), `"log":{"dropped":0}`) {
		t.Errorf("--json without the log section: %s", b)
	}
}
