package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/hazmon/hazmon/internal/actuate"
	"github.com/hazmon/hazmon/internal/gpio"
	"github.com/hazmon/hazmon/internal/modbus"
	"github.com/hazmon/hazmon/internal/reading"
	"github.com/hazmon/hazmon/internal/statefile"
)

// CutRemembered cuts the outputs of the last config the agent ran on
// dataDir (OutputsFile), for a start that cannot go on because the config
// file is bad: the breakers the last good config energised must not stay
// energised while nothing watches. GPIO outputs are written cut at once;
// coils are written through a poller of their bus and confirmed by read-
// back until ctx ends. It does nothing (and says so) while another agent
// runs on dataDir, and returns an error naming what it could not cut. No
// remembered outputs (a first start) is not an error.
func CutRemembered(ctx context.Context, dataDir string, log *slog.Logger) error {
	lock, _, err := lockInstance(dataDir)
	if err != nil {
		return fmt.Errorf("not cutting the remembered outputs: %w", err)
	}
	defer lock.release()
	var lg lastGood
	if err := statefile.Read(filepath.Join(dataDir, OutputsFile), &lg); err != nil {
		return fmt.Errorf("remembered outputs: %w", err)
	}
	if len(lg.Outputs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	res := actuate.Resources{Buses: map[string]actuate.CoilBus{}}
	for _, b := range lg.Buses {
		p, err := modbus.NewPoller(b, nil, func(reading.Reading) {}, modbus.Options{Log: log})
		if err != nil {
			return fmt.Errorf("remembered bus %s: %w", b.Name, err)
		}
		res.Buses[b.Name] = p
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Run(ctx) }()
	}
	var errs []error
	for _, o := range lg.Outputs {
		if o.GPIO != nil && res.Pins == nil {
			if res.Pins, err = gpio.Host(); err != nil {
				errs = append(errs, fmt.Errorf("output %s: %w", o.Name, err))
				continue
			}
		}
		l, err := actuate.NewLane(o, res, actuate.LaneOptions{Log: log})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = l.Run(lctx) }()
		if err := l.Close(ctx); err != nil {
			errs = append(errs, err)
		} else {
			log.Warn("remembered output cut", "output", o.Name, "at", l.Describe())
		}
		stop()
		<-done
	}
	return errors.Join(errs...)
}
