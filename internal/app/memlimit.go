package app

import (
	"math"
	"os"
	"runtime/debug"

	"github.com/hazmon/hazmon/internal/config"
)

// MemoryLimiter applies agent.memory_limit to the Go runtime: Set is
// runtime/debug.SetMemoryLimit in the agent (RuntimeMemoryLimiter), a
// recorder in tests; Getenv reads the environment (nil: os.Getenv). The
// zero value, with no Set, leaves the runtime alone: an App run inside
// another program (a test) does not change that program's limit.
type MemoryLimiter struct {
	Set    func(limit int64) (previous int64)
	Getenv func(key string) string
}

// RuntimeMemoryLimiter is the agent's MemoryLimiter: the Go runtime's
// limit, the process's environment.
func RuntimeMemoryLimiter() MemoryLimiter {
	return MemoryLimiter{Set: debug.SetMemoryLimit, Getenv: os.Getenv}
}

func (m MemoryLimiter) getenv(key string) string {
	if m.Getenv != nil {
		return m.Getenv(key)
	}
	return os.Getenv(key)
}

// apply sets the soft memory limit of cfg's agent.memory_limit (off:
// math.MaxInt64, the runtime's "no limit"), unless the GOMEMLIMIT
// environment variable is set: the runtime read that at start and it
// stays. It reports the limit set (bytes; math.MaxInt64 for none) and
// whether it set one; without Set it sets none.
func (m MemoryLimiter) apply(cfg *config.Config) (limit int64, set bool) {
	if m.Set == nil || m.getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	limit = math.MaxInt64
	if n, on := cfg.Agent.MemoryLimit.Bytes(); on {
		limit = n
	}
	m.Set(limit)
	return limit, true
}

// applyMemoryLimit applies cfg's memory limit (at start and after a
// reload) and logs it.
func (a *App) applyMemoryLimit(cfg *config.Config) {
	limit, set := a.opts.Memory.apply(cfg)
	switch {
	case a.opts.Memory.Set == nil:
	case !set:
		a.log.Info("memory limit from the GOMEMLIMIT environment variable; agent.memory_limit ignored",
			"GOMEMLIMIT", a.opts.Memory.getenv("GOMEMLIMIT"), "memory_limit", cfg.Agent.MemoryLimit.String())
	case limit == math.MaxInt64:
		a.log.Info("memory limit off")
	default:
		a.log.Info("memory limit", "bytes", limit, "memory_limit", cfg.Agent.MemoryLimit.String())
	}
}
