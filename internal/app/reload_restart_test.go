package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hazmon/hazmon/internal/config"
)

// deadband, appended to fieldYAML, sets mqtt.current_deadband (a pointer
// field too) on fieldYAML's mqtt line.
const deadband = "#deadband\n"

// parseField parses fieldYAML with extra appended, as a reload reads it.
func parseField(t *testing.T, extra string) *config.Config {
	t.Helper()
	body := fmt.Sprintf(fieldYAML, "/tmp/d", "/tmp/d/h.sock", "127.0.0.1:502") + extra
	if strings.Contains(body, deadband) {
		body = strings.Replace(body, "connect_timeout: 1s}", "connect_timeout: 1s, current_deadband: 2}", 1)
	}
	l, err := config.Parse("hazmon.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return l.Config
}

// Two loads of one file hold different pointers (buffer.commit_interval,
// mqtt.current_deadband): the sections must compare by value.
func TestRestartOnly_TwoLoadsOfOneFileAreTheSame(t *testing.T) {
	for _, extra := range []string{
		"",
		"buffer: {commit_interval: 50ms}\n",
		"buffer: {commit_interval: 0s}\n",
		"buffer: {commit_interval: 50ms}\n" + deadband,
	} {
		if got := restartOnly(parseField(t, extra), parseField(t, extra)); got != "" {
			t.Errorf("extra %q: restartOnly = %q, want \"\" (same file)", extra, got)
		}
	}
}

func TestRestartOnly_ACommitIntervalChangeNeedsARestart(t *testing.T) {
	for _, c := range [][2]string{
		{"", "buffer: {commit_interval: 50ms}\n"},                                // the default 200ms → 50ms
		{"buffer: {commit_interval: 50ms}\n", "buffer: {commit_interval: 0s}\n"}, // 50ms → at once
	} {
		if got := restartOnly(parseField(t, c[0]), parseField(t, c[1])); got != "buffer" {
			t.Errorf("%q → %q: restartOnly = %q, want buffer", c[0], c[1], got)
		}
	}
	// Unset and the default written out are the same window.
	if got := restartOnly(parseField(t, ""), parseField(t, "buffer: {commit_interval: 200ms}\n")); got != "" {
		t.Errorf("unset → 200ms (the default): restartOnly = %q, want \"\"", got)
	}
}

// A running agent with a commit_interval set accepts a reload of its
// unchanged file (a no-op) and refuses a changed window.
func TestApp_ReloadOfAnUnchangedFileWithACommitInterval(t *testing.T) {
	a, _, path, _ := fieldSite(t, "buffer: {commit_interval: 50ms}\n")
	orig, _ := os.ReadFile(path)
	ctx := context.Background()
	before := a.Config()
	for range 3 {
		changed, _, err := a.Reload(ctx)
		if err != nil || changed {
			t.Fatalf("Reload of the unchanged file = %v, %v; want a no-op", changed, err)
		}
	}
	if a.Config() != before {
		t.Fatal("unchanged config rebuilt the graph")
	}
	edited := strings.Replace(string(orig), "commit_interval: 50ms", "commit_interval: 100ms", 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Reload(ctx); !errors.Is(err, ErrRestartNeeded) {
		t.Fatalf("Reload with a new commit_interval = %v, want ErrRestartNeeded", err)
	}
}
