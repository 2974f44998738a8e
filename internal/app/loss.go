package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	last     string                 // last error text
	per      map[store.Stream]int64 // records per stream (alarms are never counted as readings)
}

func (l *lossTally) add(stream store.Stream, ts time.Time, err error) {
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
	if l.per == nil {
		l.per = map[store.Stream]int64{}
	}
	l.per[stream]++
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
		Readings: l.n, Reason: l.reason, Detail: l.perStream() + l.last}
	if len(l.per) == 1 {
		for s := range l.per {
			e.Stream = string(s)
		}
	}
	l.n, l.per = 0, nil
	return e, true
}

// perStream is "alarm=N event=M telemetry=K; " for the records counted.
func (l *lossTally) perStream() string {
	var b strings.Builder
	for _, s := range store.Streams {
		if n := l.per[s]; n > 0 {
			fmt.Fprintf(&b, "%s=%d ", s, n)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return strings.TrimSpace(b.String()) + "; "
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
		if _, rest, ok := strings.Cut(e.Detail, "; "); ok {
			l.last = rest // the per-stream counts are added again by take
		}
	}
	if l.per == nil {
		l.per = map[store.Stream]int64{}
	}
	if e.Stream != "" {
		l.per[store.Stream(e.Stream)] += e.Readings
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
