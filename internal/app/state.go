package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/safety"
	"github.com/hazmon/hazmon/internal/statefile"
	"github.com/hazmon/hazmon/internal/stats"
)

// Start-up hold after an unclean stop (a crash, a kill, a power cut, a
// watchdog restart): every output stays cut for CrashHold, doubled for
// each further unclean stop within CrashWindow, at most CrashHoldMax, so an
// agent that crashes in a loop (systemd restarts it every few seconds)
// never cycles a breaker. hazmon's own figures: the regulations set none.
const (
	CrashHold    = 30 * time.Second
	CrashHoldMax = 10 * time.Minute
	CrashWindow  = time.Hour
)

// agentState is the record in StateFile.
type agentState struct {
	V       int            `json:"v"`
	Running bool           `json:"running"` // true from start until a clean stop
	Started int64          `json:"started_ms"`
	Stopped int64          `json:"stopped_ms,omitempty"`
	Unclean []int64        `json:"unclean_ms,omitempty"` // starts of the runs that ended uncleanly, within CrashWindow
	Alarms  []safety.Alarm `json:"alarms"`               // active at the last write
}

// lastGood is the record in OutputsFile: the outputs of the last config the
// agent ran, with the buses their coils are on.
type lastGood struct {
	Buses   []config.Bus    `json:"buses"`
	Outputs []config.Output `json:"outputs"`
}

// previous is what the last run leaves to this one.
type previous struct {
	holdUntil  time.Time
	holdReason string
	alarms     []safety.Alarm
	latched    map[string]string
	stop       string // contract.StopClean, StopCrash or StopUnknown
	stopDetail string
}

// stateKeeper writes the state record off the safety path: setters record
// what to write and wake the writer goroutine (run).
type stateKeeper struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	cur     agentState
	outputs *lastGood    // to write, nil if written
	stats   *stats.Saved // the statistics window to write, nil if written
	ok      bool         // started() was called
	wake    chan struct{}
	errLog  rateLimit
}

func newStateKeeper(dir string, log *slog.Logger) *stateKeeper {
	k := &stateKeeper{dir: dir, log: log, wake: make(chan struct{}, 1)}
	k.errLog.every = time.Minute
	return k
}

// load reads the last run's record and decides the start-up hold.
func (k *stateKeeper) load(now time.Time) previous {
	var prev agentState
	err := statefile.Read(filepath.Join(k.dir, StateFile), &prev)
	var p previous
	switch {
	case errors.Is(err, os.ErrNotExist): // first start: nothing to hold
		p.stop, p.stopDetail = contract.StopUnknown, "no record of an earlier run (first start)"
		return p
	case err != nil:
		k.log.Warn("state record unreadable: treating the last stop as unclean", "err", err)
		k.cur.Unclean = []int64{now.UnixMilli()}
		p.holdUntil, p.holdReason = now.Add(CrashHold), "held after start: how the agent last stopped is unknown (state record unreadable)"
		p.stop, p.stopDetail = contract.StopUnknown, "state record unreadable: "+err.Error()
		return p
	}
	p.stop = contract.StopClean
	if prev.Running {
		p.stop, p.stopDetail = contract.StopCrash, "the last run did not stop cleanly (crash, kill, power cut or watchdog)"
	}
	p.alarms = prev.Alarms
	for _, al := range prev.Alarms {
		if al.Level == safety.LevelOutputMismatch {
			if p.latched == nil {
				p.latched = map[string]string{}
			}
			p.latched[al.Sensor] = al.Reason
		}
	}
	for _, t := range prev.Unclean {
		if now.Sub(time.UnixMilli(t)) < CrashWindow {
			k.cur.Unclean = append(k.cur.Unclean, t)
		}
	}
	if prev.Running {
		k.cur.Unclean = append(k.cur.Unclean, prev.Started)
	}
	if prev.Running && len(k.cur.Unclean) > 0 {
		hold := CrashHold << min(len(k.cur.Unclean)-1, 10)
		p.holdUntil = now.Add(min(hold, CrashHoldMax))
		p.holdReason = "held after an unclean stop of the agent (" + strconv.Itoa(len(k.cur.Unclean)) + " within " + CrashWindow.String() + ")"
	}
	return p
}

// started records a run that has begun (Running until stopped) with cfg's
// outputs as the last good ones.
func (k *stateKeeper) started(cfg *config.Config, now time.Time) {
	k.mu.Lock()
	k.cur.V, k.cur.Running, k.cur.Started, k.ok = 1, true, now.UnixMilli(), true
	k.outputs = outputsOf(cfg)
	k.mu.Unlock()
	k.poke()
}

// configured records a reloaded config's outputs as the last good ones.
func (k *stateKeeper) configured(cfg *config.Config) {
	k.mu.Lock()
	k.outputs = outputsOf(cfg)
	k.mu.Unlock()
	k.poke()
}

// setStats records the current statistics window.
func (k *stateKeeper) setStats(sv stats.Saved) {
	k.mu.Lock()
	k.stats = &sv
	k.mu.Unlock()
	k.poke()
}

// setAlarms records the active alarms.
func (k *stateKeeper) setAlarms(al []safety.Alarm) {
	k.mu.Lock()
	k.cur.Alarms = al
	k.mu.Unlock()
	k.poke()
}

func (k *stateKeeper) poke() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// run writes the record whenever it changed, until ctx ends.
func (k *stateKeeper) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.wake:
		}
		k.write()
	}
}

func (k *stateKeeper) write() {
	k.mu.Lock()
	if !k.ok {
		k.mu.Unlock()
		return
	}
	cur, outs, sv := k.cur, k.outputs, k.stats
	k.outputs, k.stats = nil, nil
	k.mu.Unlock()
	if sv != nil {
		if err := statefile.Write(filepath.Join(k.dir, StatsFile), sv); err != nil {
			k.failed(err)
		}
	}
	if outs != nil {
		if err := statefile.Write(filepath.Join(k.dir, OutputsFile), outs); err != nil {
			k.failed(err)
			k.mu.Lock()
			if k.outputs == nil {
				k.outputs = outs // try again with the next write
			}
			k.mu.Unlock()
		}
	}
	if err := statefile.Write(filepath.Join(k.dir, StateFile), cur); err != nil {
		k.failed(err)
	}
}

func (k *stateKeeper) failed(err error) {
	if k.errLog.allow() {
		k.log.Error("state record not written (the next start cannot tell how this run ended)", "err", err)
	}
}

// stopped writes the final record: clean or not, with the alarms active.
// It waits for the disk at most a second: a stalled disk cannot hold up the
// exit (the record then still says running, and the next start holds).
func (k *stateKeeper) stopped(al []safety.Alarm, clean bool) {
	k.mu.Lock()
	k.cur.Alarms = al
	if clean {
		k.cur.Running, k.cur.Stopped = false, time.Now().UnixMilli()
	}
	k.mu.Unlock()
	done := make(chan struct{})
	go func() { defer close(done); k.write() }()
	select {
	case <-done:
	case <-time.After(time.Second):
		k.log.Error("state record: the disk did not answer within 1s at shutdown")
	}
}

func outputsOf(cfg *config.Config) *lastGood {
	lg := &lastGood{Outputs: cfg.Outputs}
	seen := map[string]bool{}
	for _, o := range cfg.Outputs {
		if o.Modbus != nil && !seen[o.Modbus.Bus] {
			if b := cfg.Bus(o.Modbus.Bus); b != nil {
				lg.Buses = append(lg.Buses, *b)
				seen[b.Name] = true
			}
		}
	}
	return lg
}
