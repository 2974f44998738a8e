package app

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/mbslave"
	"github.com/hazmon/hazmon/internal/mbslave/mbslavetest"
)

// limitRecorder stands in for runtime/debug.SetMemoryLimit.
type limitRecorder struct {
	mu  sync.Mutex
	got []int64
}

func (r *limitRecorder) set(n int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, n)
	return math.MaxInt64
}

func (r *limitRecorder) calls() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// memorySite writes a one-sensor config with the given agent extra keys
// and returns its path and config.
func memorySite(t *testing.T, agentExtra string) (string, *config.Config) {
	t.Helper()
	bank := mbslave.NewBank()
	bank.SetHolding(1, 0, 40)
	addr := mbslavetest.StartTCP(t, bank)
	dir := t.TempDir()
	path := filepath.Join(dir, "hazmon.yaml")
	body := fmt.Sprintf(fieldYAML, dir, filepath.Join(dir, "h.sock"), addr)
	body = strings.Replace(body, "data_dir: "+dir+"}", "data_dir: "+dir+agentExtra+"}", 1)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, l.Config
}

// The configured agent.memory_limit reaches SetMemoryLimit at start (the
// default 32 MiB when unset) and again after a reload that changes it;
// off sets no limit (math.MaxInt64).
func TestApp_MemoryLimitReachesTheRuntime(t *testing.T) {
	path, cfg := memorySite(t, "")
	rec := &limitRecorder{}
	a, _ := runAppWith(t, cfg, Options{ConfigPath: path,
		Memory: MemoryLimiter{Set: rec.set, Getenv: func(string) string { return "" }}})
	if got := rec.calls(); !slices.Equal(got, []int64{32 << 20}) {
		t.Fatalf("at start SetMemoryLimit got %v, want [32 MiB]", got)
	}
	orig, _ := os.ReadFile(path)
	for _, c := range []struct {
		text string
		want int64
	}{{"64MiB", 64 << 20}, {"off", math.MaxInt64}} {
		body := strings.Replace(string(orig), "}\nmqtt:", ", memory_limit: "+c.text+"}\nmqtt:", 1)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Reload(context.Background()); err != nil {
			t.Fatalf("reload to memory_limit %s: %v", c.text, err)
		}
		if got := rec.calls(); got[len(got)-1] != c.want {
			t.Errorf("after a reload to memory_limit %s SetMemoryLimit got %v, want %d last", c.text, got, c.want)
		}
	}
}

// With GOMEMLIMIT in the environment the configured limit is not applied:
// the environment wins. Without a setter (an App inside another program)
// nothing is applied either.
func TestMemoryLimiter_EnvironmentWins(t *testing.T) {
	cfg := &config.Config{Agent: config.Agent{MemoryLimit: 48 << 20}}
	rec := &limitRecorder{}
	env := map[string]string{"GOMEMLIMIT": "100MiB"}
	m := MemoryLimiter{Set: rec.set, Getenv: func(k string) string { return env[k] }}
	if _, set := m.apply(cfg); set || len(rec.calls()) != 0 {
		t.Errorf("GOMEMLIMIT set: SetMemoryLimit got %v, want no call", rec.calls())
	}
	delete(env, "GOMEMLIMIT")
	if n, set := m.apply(cfg); !set || n != 48<<20 || !slices.Equal(rec.calls(), []int64{48 << 20}) {
		t.Errorf("without GOMEMLIMIT: %d %v, calls %v, want 48 MiB", n, set, rec.calls())
	}
	if _, set := (MemoryLimiter{}).apply(cfg); set {
		t.Error("the zero MemoryLimiter set a limit")
	}
}
