package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazmon/hazmon/internal/app"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/publish/brokertest"
	"github.com/hazmon/hazmon/internal/store"
)

// statusOf decodes a status message.
func statusOf(t *testing.T, m brokertest.Message) contract.Status {
	t.Helper()
	if err := contract.Validate(contract.KindStatus, m.Payload); err != nil {
		t.Fatalf("status: %v: %s", err, m.Payload)
	}
	var s contract.Status
	if err := json.Unmarshal(m.Payload, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func nextStatus(t *testing.T, ch <-chan brokertest.Message, what string) contract.Status {
	t.Helper()
	select {
	case m := <-ch:
		return statusOf(t, m)
	case <-time.After(wait):
		t.Fatalf("no status within %v (%s)", wait, what)
		return contract.Status{}
	}
}

// M4 (b): SIGTERM to the real agent process. The agent publishes the
// retained "offline" itself before disconnecting: the offline status a
// subscriber receives, and the one a late subscriber gets as retained,
// carries a ts inside the shutdown window (between the SIGTERM and the
// process exit). The broker's will cannot be that message: the will
// carries "will":true and no ts (it is formed at connect time, so it
// cannot know the time of death); and after the clean DISCONNECT no
// further status (a will) follows. Every (re)connect publishes "online": the first connect and
// each of two network drops (proxy cuts every connection without a
// DISCONNECT; the broker publishes the will, the agent reconnects).
func TestCases_M4bSigtermPublishesOffline(t *testing.T) {
	b := brokertest.Start(t)
	proxy := brokertest.NewProxy(t, strings.TrimPrefix(b.URL, "tcp://"))
	statusTopic := "hazmon/v1/" + site + "/" + gateID + "/status"
	sub := b.Subscribe(t, "bureau-m4b", statusTopic)
	s := startSite(t, 1)
	cfg := agentConfig{Brokers: []string{"tcp://" + proxy.Addr()}, DataDir: t.TempDir(), SlaveAddr: s.addr,
		Sensors: 1, Interval: "200ms"}.write(t)
	a := startAgent(t, cfg)

	if st := nextStatus(t, sub, "first online"); st.State != contract.StateOnline {
		t.Fatalf("first status %q, want online", st.State)
	}
	for drop := 1; drop <= 2; drop++ {
		proxy.CutAll()
		if st := nextStatus(t, sub, "will after a drop"); st.State != contract.StateOffline {
			t.Fatalf("drop %d: status %q, want the offline will", drop, st.State)
		}
		if st := nextStatus(t, sub, "online after reconnect"); st.State != contract.StateOnline {
			t.Fatalf("drop %d: status %q after the reconnect, want online", drop, st.State)
		}
	}

	termAt := time.Now()
	a.term()
	exitAt := time.Now()
	st := nextStatus(t, sub, "offline on SIGTERM")
	inWindow := func(ts int64) bool { return ts >= termAt.UnixMilli() && ts <= exitAt.UnixMilli() }
	if st.State != contract.StateOffline || !inWindow(st.TS) {
		t.Fatalf("after SIGTERM: status %q ts %d, want offline published by the agent between %d and %d (a ts before is the broker's will)",
			st.State, st.TS, termAt.UnixMilli(), exitAt.UnixMilli())
	}
	late := b.Subscribe(t, "late-m4b", statusTopic)
	select {
	case m := <-late:
		ls := statusOf(t, m)
		if !m.Retained || ls.State != contract.StateOffline || ls.TS != st.TS {
			t.Fatalf("late subscriber got %s (retained %v), want the agent's retained offline ts %d", m.Payload, m.Retained, st.TS)
		}
	case <-time.After(wait):
		t.Fatal("no retained status for a late subscriber")
	}
	// A will would follow at once on an unclean close (or within 1.5 ×
	// keepalive = 4.5 s on a silent one): nothing may follow the clean one.
	select {
	case m := <-sub:
		t.Fatalf("status after the agent's clean disconnect (the will fired?): %s", m.Payload)
	case <-time.After(6 * time.Second):
	}
	t.Logf("offline published %v after SIGTERM; process exited after %v", time.UnixMilli(st.TS).Sub(termAt).Round(time.Millisecond), exitAt.Sub(termAt).Round(time.Millisecond))
}

// S1: a second opener fails fast. With the agent process running (it holds
// the bbolt file), a second agent in this process (app.New on the same
// data_dir), a second `hazmon run` process and the CLI's `hazmon buffer
// stats` / `buffer export` falling back to the file (--socket names no
// socket, as when the technician's socket path is wrong) each fail within
// about a second (bbolt's own lock wait is forever; ours is 1 s, allowed
// up to 3 s on a loaded machine) with "buffer in use by the running
// agent". The running agent is unharmed: it still answers and polls.
func TestCases_S1SecondOpenerFailsFast(t *testing.T) {
	s := startSite(t, 1)
	dataDir := t.TempDir()
	cfgPath := agentConfig{Brokers: []string{"tcp://127.0.0.1:1"}, DataDir: dataDir, SlaveAddr: s.addr,
		Sensors: 1, Interval: "100ms"}.write(t)
	a := startAgent(t, cfgPath)
	const limit = 3 * time.Second
	const inUse = "buffer in use by the running agent"

	l, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	second, err := app.New(l.Config, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ConfigPath: cfgPath})
	took := time.Since(start)
	if err == nil {
		t.Fatalf("second app.New on the running agent's data_dir succeeded (%v)", second)
	}
	if !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), inUse) || took > limit {
		t.Fatalf("second app.New: %v after %v, want %q within %v", err, took, inUse, limit)
	}
	t.Logf("app.New: %v after %v", err, took.Round(time.Millisecond))

	wrongSock := filepath.Join(t.TempDir(), "no-such.sock")
	for _, args := range [][]string{
		{"buffer", "stats", "--config", cfgPath, "--socket", wrongSock},
		{"buffer", "export", "--config", cfgPath, "--socket", wrongSock},
		{"buffer", "stats", "--file", filepath.Join(dataDir, app.BufferFile)},
		{"run", "--config", cfgPath},
	} {
		var out bytes.Buffer
		cmd := exec.Command(hazmonBin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(wait):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("hazmon %s still running after %v (waiting for the lock?)", strings.Join(args, " "), wait)
		}
		took := time.Since(start)
		if err == nil || !strings.Contains(out.String(), inUse) || took > limit {
			t.Fatalf("hazmon %s: exit %v after %v, output:\n%s\nwant a failure with %q within %v", strings.Join(args, " "), err, took, out.String(), inUse, limit)
		}
		t.Logf("hazmon %s: failed after %v", strings.Join(args, " "), took.Round(time.Millisecond))
	}

	// The agent still runs, answers on its socket and keeps polling.
	r0 := s.requests()
	out, err := exec.Command(hazmonBin, "buffer", "stats", "--config", cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "(via agent)") {
		t.Fatalf("buffer stats through the running agent: %v\n%s", err, out)
	}
	deadline := time.Now().Add(wait)
	for s.requests() < r0+10 {
		if time.Now().After(deadline) {
			t.Fatal("the running agent stopped polling")
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-a.done:
		t.Fatalf("the running agent exited: %v", a.err)
	default:
	}
}
