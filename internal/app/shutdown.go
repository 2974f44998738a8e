package app

import (
	"context"
	"sync"
	"time"
)

// EmergencyCut cuts every output without waiting: GPIO lines at once,
// coils as soon as their bus lets them. For a shutdown that overran its
// bound.
func (a *App) EmergencyCut() { a.emergencyCut() }

// cutAll cuts every output and waits (CutTimeout at most) until each is
// confirmed cut, while the buses still run.
func (a *App) cutAll() {
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.CutTimeout)
	defer cancel()
	p := a.current()
	var wg sync.WaitGroup
	for _, lp := range p.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lp.lane.Close(ctx); err != nil {
				a.log.Error("shutdown: output not confirmed cut", "err", err)
			}
		}()
	}
	wg.Wait()
}

// emergencyCut cuts every output without waiting (GPIO at once, coils as
// soon as their bus lets them): after a panic.
func (a *App) emergencyCut() {
	p := a.plantNow.Load()
	if p == nil {
		return
	}
	for _, lp := range p.lanes {
		lp.lane.EmergencyCut()
	}
}

// stopPlant stops the lanes, pollers and inputs and waits for them.
func (a *App) stopPlant() {
	p := a.current()
	for _, lp := range p.lanes {
		lp.stop()
	}
	for _, bp := range p.pollers {
		bp.stop()
	}
	for _, ip := range p.inputs {
		ip.stop()
	}
}

// drain gives the publisher up to DrainTimeout to send what is buffered.
func (a *App) drain() {
	st, pub := a.buffer(), a.publisher()
	if st == nil || pub == nil {
		return
	}
	deadline := time.Now().Add(a.opts.DrainTimeout)
	for time.Now().Before(deadline) {
		s, err := st.Stats()
		if err != nil || !pub.Link().Connected {
			return
		}
		if p, o := s.Depth(); p+o == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
