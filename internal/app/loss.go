package app

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/contract"
	"github.com/hazmon/hazmon/internal/store"
)

// Reasons of data_loss events raised by the agent itself (the buffer's own
// evictions say buffer_full or max_age).
const (
	LossBufferBusy = "buffer_busy" // the append queue was full: the disk is stalled or too slow
	LossWriteError = "write_error" // the commit failed (I/O error, disk full)
)

// lossTally counts records the buffer refused, so that every one of them
// is reported in a data_loss event: nothing is lost silently.
type lossTally struct {
	mu       sync.Mutex
	n        int64
	from, to int64 // sample times, unix ms
	reason   string
	last     string // last error text
}

func (l *lossTally) add(ts time.Time, err error) {
	reason := LossWriteError
	if errors.Is(err, store.ErrBusy) {
		reason = LossBufferBusy
	}
	ms := ts.UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 || ms < l.from {
		l.from = ms
	}
	if l.n == 0 || ms > l.to {
		l.to = ms
	}
	if l.n == 0 || reason == LossWriteError {
		l.reason = reason
	}
	l.n++
	l.last = err.Error()
}

// lastError is the last refusal's error text, "" if none yet.
func (l *lossTally) lastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// take returns the pending loss as an event and resets the tally.
func (l *lossTally) take(now time.Time) (contract.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return contract.Event{}, false
	}
	e := contract.Event{Type: contract.EventDataLoss, TS: now.UnixMilli(), FromTS: l.from, ToTS: l.to,
		Readings: l.n, Reason: l.reason, Detail: l.last}
	l.n = 0
	return e, true
}

// putBack returns an event that could not be queued to the tally.
func (l *lossTally) putBack(e contract.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 || e.FromTS < l.from {
		l.from = e.FromTS
	}
	if l.n == 0 || e.ToTS > l.to {
		l.to = e.ToTS
	}
	if l.n == 0 {
		l.reason, l.last = e.Reason, e.Detail
	}
	l.n += e.Readings
}

// reportLoss queues a data_loss event for the records refused since the
// last report. If the buffer refuses the event too, the count is kept for
// the next try: the event is the one record that must get through.
func (a *App) reportLoss() {
	e, ok := a.loss.take(time.Now())
	if !ok {
		return
	}
	st := a.buffer()
	if st == nil {
		a.loss.putBack(e) // no buffer to report into: the count waits
		return
	}
	a.log.Error("buffer refused records: reporting data_loss", "records", e.Readings, "reason", e.Reason, "err", e.Detail)
	data, err := contract.Marshal(e)
	if err == nil {
		err = st.AppendAsync(store.Event, time.UnixMilli(e.TS), data, func(err error) {
			if err != nil {
				a.loss.putBack(e)
			}
		})
	}
	if err != nil {
		a.loss.putBack(e)
	}
}

// lossLoop reports refused records once a second until ctx ends.
func (a *App) lossLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.reportLoss()
		}
	}
}
