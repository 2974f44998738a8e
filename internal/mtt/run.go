package mtt

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Run writes the files and pushes the spool until ctx ends or Close is
// called. It owns two goroutines: the writer (definitions on start and on
// change, real-time values every Interval, abnormal records and statistics
// as they come) and the pusher (the spool's files oldest first, retried
// with exponential back-off from RetryMin to RetryMax while uploads fail).
// At the end it writes what the inputs still hold, pushes what it can
// within FlushTimeout (the rest stays in the spool for the next start),
// closes the uploader and returns nil. A second Run returns an error.
func (e *Exporter) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.runStarted {
		e.mu.Unlock()
		return errors.New("mtt: Run called twice")
	}
	e.runStarted = true
	ctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	e.mu.Unlock()
	defer close(e.done)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() { e.writeLoop(ctx) })
	wg.Go(func() { e.pushLoop(ctx) })
	wg.Wait()

	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), e.o.FlushTimeout)
	defer fcancel()
	for {
		name, path, ok := e.spool.Next()
		if !ok || e.pushOne(fctx, name, path) != nil {
			break
		}
	}
	_ = e.o.Uploader.Close()
	return nil
}

// Close stops Run and waits until it has returned (the inputs written, the
// final pushes bounded by FlushTimeout). Without a running Run it returns
// at once, and a later Run returns an error at once.
func (e *Exporter) Close() error {
	e.mu.Lock()
	started := e.runStarted
	e.runStarted = true // a Run after Close does nothing
	cancel := e.cancel
	e.mu.Unlock()
	if !started {
		return nil
	}
	if cancel != nil {
		cancel()
		<-e.done
	}
	return nil
}

func (e *Exporter) writeLoop(ctx context.Context) {
	t := e.o.Clock.NewTicker(e.o.Interval)
	defer t.Stop()
	e.writePending(e.o.Clock.Now())
	for {
		select {
		case <-ctx.Done():
			e.writePending(e.o.Clock.Now())
			return
		case <-e.wake:
			e.writePending(e.o.Clock.Now())
		case <-t.C():
			now := e.o.Clock.Now()
			e.writePending(now)
			e.writeValues(now)
		}
	}
}

// nameTime is the time of a new file of kind t: now to the second, later
// than the last file of that kind (in this run or still in the spool), so
// a name never repeats and a file never replaces another on the server.
// Writer goroutine only.
func (e *Exporter) nameTime(t FileType, now time.Time) time.Time {
	at := now.Truncate(time.Second)
	if last, ok := e.lastName[t]; ok && !at.After(last) {
		at = last.Add(time.Second)
	}
	e.lastName[t] = at
	return at
}

// put spools f and counts it; it reports whether f is in the spool (or
// was dropped by its bound).
func (e *Exporter) put(f File) bool {
	err := e.spool.Put(f)
	e.mu.Lock()
	if err != nil {
		e.st.WriteErrors++
	} else {
		e.st.Written[f.Type]++
	}
	e.mu.Unlock()
	if err != nil {
		e.o.Log.Error("mtt: cannot spool file", "file", f.Name, "err", err)
		return false
	}
	return true
}

// writePending writes the definitions if they changed (or were not
// written in this run yet), the queued abnormal records and statistics.
func (e *Exporter) writePending(now time.Time) {
	e.mu.Lock()
	defs := e.havePoints && (e.defsDirty || !e.defsOnce)
	ps := e.points // replaced by SetPoints, never modified
	e.defsDirty = false
	as := e.abnormals
	e.abnormals = nil
	for i := range as {
		e.fill(as[i].Point, &as[i].TypeName, &as[i].Place, &as[i].Unit)
	}
	batches := e.statsQ
	e.statsQ = nil
	for _, b := range batches {
		for i := range b {
			e.fill(b[i].Point, &b[i].TypeName, &b[i].Place, &b[i].Unit)
		}
	}
	e.mu.Unlock()

	if defs {
		ok := e.put(e.enc.Definitions(e.nameTime(TypeCDDY, now), ps))
		e.mu.Lock()
		if ok {
			e.defsOnce = true
		} else {
			e.defsDirty = true // retried on the next tick
		}
		e.mu.Unlock()
	}
	if len(as) > 0 && !e.put(e.enc.Abnormals(e.nameTime(TypeYCBJ, now), as)) {
		e.requeue(func() { e.abnormals = keepNewest(append(as, e.abnormals...), e.o.QueueMax, &e.st.InputDropped) })
	}
	for i, b := range batches {
		if !e.put(e.enc.Statistics(e.nameTime(TypeTJSJ, now), b)) {
			rest := batches[i:]
			e.requeue(func() { e.statsQ = keepNewest(append(rest, e.statsQ...), e.o.QueueMax, &e.st.InputDropped) })
			break
		}
	}
}

func (e *Exporter) requeue(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f()
}

// keepNewest trims q to its newest n entries, counting the dropped ones.
func keepNewest[T any](q []T, n int, dropped *uint64) []T {
	if len(q) <= n {
		return q
	}
	*dropped += uint64(len(q) - n)
	return q[len(q)-n:]
}

// writeValues writes the real-time file: every defined point's latest
// value, or Unknown with status 32 (not polled) for a point with none yet.
func (e *Exporter) writeValues(now time.Time) {
	e.mu.Lock()
	if len(e.points) == 0 {
		e.mu.Unlock()
		return
	}
	vs := make([]Value, 0, len(e.points))
	for _, p := range e.points {
		v, ok := e.latest[p.Code]
		if !ok {
			v = Value{Point: p.Code, Status: StatusNotPolled, Time: now}
		}
		e.fill(p.Code, &v.TypeName, &v.Place, &v.Unit)
		vs = append(vs, v)
	}
	e.mu.Unlock()
	e.put(e.enc.Values(e.nameTime(TypeCDSS, now), vs))
}

func (e *Exporter) pushLoop(ctx context.Context) {
	backoff := e.o.RetryMin
	for {
		name, path, ok := e.spool.Next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-e.spool.Notify():
			}
			continue
		}
		if e.pushOne(ctx, name, path) == nil {
			backoff = e.o.RetryMin
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-e.o.Clock.After(jitter(backoff)):
		}
		backoff = min(2*backoff, e.o.RetryMax)
	}
}

// pushOne uploads one spooled file; on success it leaves the spool, on
// failure it goes back to be retried first.
func (e *Exporter) pushOne(ctx context.Context, name, path string) error {
	err := e.o.Uploader.Upload(ctx, name, path)
	if err != nil {
		e.spool.Release(name)
		e.mu.Lock()
		first := e.st.LastError == ""
		e.st.PushFailures++
		e.st.LastError = err.Error()
		e.mu.Unlock()
		if first && ctx.Err() == nil {
			e.o.Log.Warn("mtt: upload failed, retrying with back-off; files stay in the spool", "file", name, "err", err)
		}
		return err
	}
	if err := e.spool.Done(name); err != nil {
		e.o.Log.Error("mtt: uploaded file not removed from the spool, it will be pushed again", "file", name, "err", err)
	}
	e.mu.Lock()
	recovered := e.st.LastError != ""
	e.st.Pushed++
	e.st.LastPush = e.o.Clock.Now()
	e.st.LastError = ""
	e.mu.Unlock()
	if recovered {
		e.o.Log.Info("mtt: uploads resumed", "file", name)
	}
	if e.o.OnPushed != nil {
		e.o.OnPushed(name)
	}
	return nil
}

// jitter spreads d by ±10 % so gateways that lost the same server do not
// retry in step.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}
