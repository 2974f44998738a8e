package app

import (
	"context"
	"fmt"
	"time"

	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/safety"
)

// OutputTest implements control.Backend: the output is cut for d (a test
// only cuts power that is on), the feed response is read, and the output
// goes back to what the rules demand. The safety core ends the test by
// itself at d, even if this request is abandoned.
func (b *controlBackend) OutputTest(ctx context.Context, name string, d time.Duration) (control.OutputTestResult, error) {
	a := (*App)(b)
	g := a.current()
	known := false
	var feed string
	for _, o := range g.cfg.Outputs {
		if o.Name == name {
			known, feed = true, o.Feed
		}
	}
	if !known {
		return control.OutputTestResult{}, fmt.Errorf("%w: output %q is not configured", control.ErrNotFound, name)
	}
	if d <= 0 || d > safety.MaxTest {
		return control.OutputTestResult{}, fmt.Errorf("%w: test duration %s (want 0 < d <= %s)", control.ErrInvalid, d, safety.MaxTest)
	}
	if err := a.core.TestCut(ctx, name, d); err != nil {
		return control.OutputTestResult{}, fmt.Errorf("%w: output test: %v", control.ErrInvalid, err)
	}
	start := time.Now()
	res := control.OutputTestResult{Name: name, Action: "cut", Feed: feed}
	var absentAfter time.Duration = -1
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
wait:
	for time.Since(start) < d {
		select {
		case <-ctx.Done():
			break wait
		case <-t.C:
			if feed != "" && absentAfter < 0 {
				if o, ok := a.outputState(ctx, name); ok && o.FeedValid && !o.FeedPresent {
					absentAfter = time.Since(start)
				}
			}
		}
	}
	res.HeldS = time.Since(start).Seconds()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := a.core.ReleaseTest(rctx, name); err != nil {
		a.log.Error("output test: release", "output", name, "err", err)
	}
	if feed != "" {
		ok := absentAfter >= 0
		res.FeedOK = &ok
		if ok {
			res.FeedResponse = fmt.Sprintf("power absent after %.2f s", absentAfter.Seconds())
		} else {
			res.FeedResponse = "power still present: feed did not follow the cut"
		}
	} else {
		res.FeedResponse = "no feed sensor configured"
	}
	res.Final = "on"
	if o, ok := a.outputState(rctx, name); ok && o.Cut {
		res.Final = "cut"
	}
	return res, ctx.Err()
}

// outputState is one output in the safety core's snapshot.
func (a *App) outputState(ctx context.Context, name string) (safety.OutputState, bool) {
	snap, err := a.core.Snapshot(ctx)
	if err != nil {
		return safety.OutputState{}, false
	}
	for _, o := range snap.Outputs {
		if o.Name == name {
			return o, true
		}
	}
	return safety.OutputState{}, false
}

// OutputRestore implements control.Backend: it lifts a latch (an output
// found cut by something else) or a reload's hold, never a rule.
func (b *controlBackend) OutputRestore(ctx context.Context, name string) (control.OutputRestoreResult, error) {
	a := (*App)(b)
	lifted, err := a.core.Restore(ctx, name)
	if err != nil {
		return control.OutputRestoreResult{}, fmt.Errorf("%w: %v", control.ErrInvalid, err)
	}
	a.log.Warn("output restored by a technician", "output", name, "lifted", lifted)
	res := control.OutputRestoreResult{Name: name, Lifted: lifted, Final: "on"}
	if o, ok := a.outputState(ctx, name); ok && o.Cut {
		res.Final, res.Why = "cut", o.Why
	}
	return res, nil
}

// Calibrate implements control.Backend: the sensor's readings and alarms
// carry calibrating until the end (d <= 0 ends it now); actuation goes on,
// since testing the cut-off is part of calibration.
func (b *controlBackend) Calibrate(ctx context.Context, sensor string, d time.Duration) (control.CalibrateResult, error) {
	a := (*App)(b)
	g := a.current()
	known := false
	for _, s := range g.cfg.Sensors {
		known = known || s.ID == sensor
	}
	if !known {
		return control.CalibrateResult{}, fmt.Errorf("%w: sensor %q is not configured", control.ErrNotFound, sensor)
	}
	if d > 24*time.Hour {
		return control.CalibrateResult{}, fmt.Errorf("%w: calibration of %s (at most 24h)", control.ErrInvalid, d)
	}
	var until time.Time
	if d > 0 {
		until = time.Now().Add(d)
	}
	if err := a.core.Calibrate(ctx, sensor, until); err != nil {
		return control.CalibrateResult{}, fmt.Errorf("%w: %v", control.ErrNotFound, err)
	}
	a.log.Info("calibration set from the control socket", "sensor", sensor, "until", until)
	a.publishPoints(ctx)
	res := control.CalibrateResult{Sensor: sensor}
	if !until.IsZero() {
		res.UntilTS = until.UnixMilli()
	}
	return res, nil
}

// --- reload over the control socket (owned by the CLI engineer) ---
