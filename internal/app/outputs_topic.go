package app

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/safety"
)

// outputsTopic remembers the outputs last made the retained …/outputs
// message, so that an unchanged set is not sent again.
type outputsTopic struct {
	mu   sync.Mutex
	last []contract.Output // nil: none sent yet
}

// retainOutputs takes the safety core's snapshot and, if any output's
// command, reason, read-back, latch, test or feed differs from the last
// one sent (or none was sent), makes it the retained …/outputs message
// (published as soon as the link is up, and again on every connect). It
// reports whether it did. It waits for the core's loop (bounded by ctx),
// never for the network; without a publisher (no buffer) it does nothing.
// Call it wherever outputs may have changed — after an output alarm, a
// change of command, a restore, a test, a reload, the start-up hold's end
// — or on a timer: an unchanged set costs one snapshot.
func (a *App) retainOutputs(ctx context.Context) (bool, error) {
	pub := a.publisher()
	if pub == nil {
		return false, nil
	}
	snap, err := a.core.OutputsSnapshot(ctx)
	if err != nil {
		return false, err
	}
	cfg := a.current().cfg
	msg := outputsPayload(cfg.Agent.ID, cfg.Agent.Site, snap)
	a.outputs.mu.Lock()
	defer a.outputs.mu.Unlock()
	if a.outputs.last != nil && sameOutputs(a.outputs.last, msg.Outputs) {
		return false, nil
	}
	b, err := contract.Marshal(msg)
	if err != nil {
		return false, err
	}
	pub.SetRetained(contract.KindOutputs, b)
	a.outputs.last = msg.Outputs
	return true, nil
}

// outputsPayload is the retained …/outputs message of a safety snapshot:
// every output in configuration order, ts the snapshot's time.
func outputsPayload(agent, site string, snap safety.Snapshot) contract.Outputs {
	msg := contract.Outputs{V: contract.Version, Agent: agent, Site: site, TS: snap.Time.UnixMilli(),
		Outputs: make([]contract.Output, 0, len(snap.Outputs))}
	for _, o := range snap.Outputs {
		out := contract.Output{Name: o.Name, Commanded: contract.OutputOn, Confirmed: o.Confirmed,
			ReadBack: contract.OutputUnknown, Error: o.LastError, Latched: o.Latched, Testing: o.Testing}
		if o.Cut {
			out.Commanded, out.Why = contract.OutputCut, o.Why
			if out.Why == "" {
				out.Why = "pending" // commanded cut, the command allowing power not yet out
			}
		}
		if ms := o.ChangedAt.UnixMilli(); !o.ChangedAt.IsZero() && ms > 0 {
			out.ChangedAt = ms
		}
		if o.Known {
			out.ReadBack = contract.OutputCut
			if o.Energised {
				out.ReadBack = contract.OutputOn
			}
		}
		if o.Feed != "" {
			f := &contract.OutputFeed{Input: o.Feed, State: contract.FeedUnknown, Abnormal: o.FeedAbnormal, Reason: o.FeedReason}
			if o.FeedValid {
				f.State = contract.FeedAbsent
				if o.FeedPresent {
					f.State = contract.FeedPresent
				}
			}
			out.Feed = f
		}
		msg.Outputs = append(msg.Outputs, out)
	}
	return msg
}

// sameOutputs reports whether two output lists say the same.
func sameOutputs(a, b []contract.Output) bool {
	return slices.EqualFunc(a, b, func(x, y contract.Output) bool {
		xf, yf := x.Feed, y.Feed
		x.Feed, y.Feed = nil, nil
		return x == y && (xf == nil) == (yf == nil) && (xf == nil || *xf == *yf)
	})
}

// OutputsEvery is how often the retained …/outputs message is refreshed
// from the safety core (sent only when something changed).
const OutputsEvery = time.Second

// outputsLoop keeps the retained …/outputs message and the status's state
// up to date until ctx ends.
func (a *App) outputsLoop(ctx context.Context) {
	t := time.NewTicker(OutputsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.updateState() // degraded while the buffer runs on memory, online again after
		sctx, cancel := context.WithTimeout(ctx, OutputsEvery/2)
		if _, err := a.retainOutputs(sctx); err != nil && a.errLog.allow() {
			a.log.Warn("outputs topic: no snapshot of the safety core", "err", err)
		}
		cancel()
	}
}
