package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixedBackend answers Status with a fixed snapshot and everything else
// with ErrUnavailable: enough to exercise the socket and the error mapping.
type fixedBackend struct{ st Status }

func (b fixedBackend) Status(context.Context) (Status, error) { return b.st, nil }
func (fixedBackend) Probe(context.Context, ProbeRequest) (ProbeResult, error) {
	return ProbeResult{}, ErrNotFound
}
func (fixedBackend) OutputTest(context.Context, string, time.Duration) (OutputTestResult, error) {
	return OutputTestResult{}, errors.New("output test: " + ErrUnavailable.Error())
}
func (fixedBackend) OutputRestore(context.Context, string) (OutputRestoreResult, error) {
	return OutputRestoreResult{}, ErrUnavailable
}
func (fixedBackend) Calibrate(context.Context, string, time.Duration) (CalibrateResult, error) {
	return CalibrateResult{}, ErrUnavailable
}
func (fixedBackend) Reload(context.Context) (ReloadResult, error) {
	return ReloadResult{}, &RefusedError{What: "reload refused (the running config stays)",
		Problems: []string{"a.yaml:3: buses[0].baud: want > 0", `a.yaml:9: sensors[0].colour: unknown key "colour"`}}
}
func (fixedBackend) BufferStats(context.Context) (BufferStats, error) {
	return BufferStats{Pending: 7}, nil
}
func (fixedBackend) BufferExport(_ context.Context, _ time.Time, _ string, w io.Writer) (int, error) {
	_, err := io.WriteString(w, "a,b\n")
	return 1, err
}

func (b fixedBackend) Metrics(_ context.Context, w io.Writer) error {
	if b.st.State == "" {
		return ErrUnavailable
	}
	_, err := io.WriteString(w, "# HELP hazmon_up Test.\n# TYPE hazmon_up gauge\nhazmon_up 1\n")
	return err

}

func (fixedBackend) BufferDead(_ context.Context, _ string, w io.Writer) (int, error) {
	_, err := io.WriteString(w, "d\n")
	return 1, err
}

func serve(t *testing.T, path string) (stop func()) {
	t.Helper()
	srv, err := Listen(path, fixedBackend{st: Status{State: StateStarting, Agent: "gw-1"}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

func TestSocket_ModeStaleAndErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "h.sock")

	// A stale socket file (nobody listening) is reported, then replaced.
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	c := NewClient(path)
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNotRunning) || err.Error() != "no agent answers at "+path+" (stale socket file, nobody listening)" {
		t.Errorf("stale socket: err = %v", err)
	}

	stop := serve(t, path)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != SocketMode || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v mode %v", err, fi.Mode())
	}
	st, err := c.Status(context.Background())
	if err != nil || st.State != StateStarting || st.Agent != "gw-1" {
		t.Errorf("status = %+v, %v", st, err)
	}
	if bs, err := c.BufferStats(context.Background()); err != nil || bs.Pending != 7 {
		t.Errorf("buffer stats = %+v, %v", bs, err)
	}
	var sb strings.Builder
	if n, err := c.BufferExport(context.Background(), time.Time{}, FormatCSV, &sb); err != nil || n != 1 || sb.String() != "a,b\n" {
		t.Errorf("export = %d %q %v", n, sb.String(), err)
	}
	sb.Reset()
	if n, err := c.BufferDead(context.Background(), FormatJSONL, &sb); err != nil || n != 1 || sb.String() != "d\n" {
		t.Fatalf("dead letters through the socket: %d %q %v", n, sb.String(), err)
	}
	if _, err := c.BufferExport(context.Background(), time.Time{}, "xml", &sb); !errors.Is(err, ErrInvalid) {
		t.Errorf("export xml: %v", err)
	}
	if _, err := c.Probe(context.Background(), ProbeRequest{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("probe: %v", err)
	}
	if _, err := c.Calibrate(context.Background(), "x", time.Second); !errors.Is(err, ErrUnavailable) {
		t.Errorf("calibrate: %v", err)
	}
	// A refusal crosses the socket with each problem on its own line.
	_, err = c.Reload(context.Background())
	var re *RefusedError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &re) || len(re.Problems) != 2 ||
		err.Error() != "reload refused (the running config stays):\n  a.yaml:3: buses[0].baud: want > 0\n  a.yaml:9: sensors[0].colour: unknown key \"colour\"" {
		t.Errorf("reload: %v", err)
	}

	// A second agent on the same path is refused, the first keeps serving.
	if _, err := Listen(path, fixedBackend{}, nil); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second Listen: %v", err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Errorf("first agent after a refused second: %v", err)
	}

	stop()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left after Serve: %v", err)
	}
	c.Hint = "default; give --socket PATH"
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNotRunning) || err.Error() != "no agent answers at "+path+" (default; give --socket PATH)" {
		t.Errorf("after stop: %v", err)
	}

	// A regular file at the path is never removed.
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, fixedBackend{}, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a file: %v", err)
	}
}
