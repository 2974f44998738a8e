package app

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
)

// errSourceFailed wraps a part's fatal error.
var errSourceFailed = errors.New("source failed")

// errPanic wraps a recovered panic.
var errPanic = errors.New("panic")

// spawn runs f on a goroutine of its own and returns a channel that gets
// f's error when it returns. A panic in f is recovered at the root of the
// goroutine: every output is cut, the panic is logged with its stack, and
// Run stops with an error (the process exits non-zero). Nothing the App
// starts runs outside spawn.
func (a *App) spawn(name string, f func() error) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() {
			if r := recover(); r != nil {
				err = a.panicked(name, r, debug.Stack())
			}
			done <- err
		}()
		err = f()
	}()
	return done
}

// spawnPart runs a plant part (lane, poller, input) under a child of ctx.
// A part that returns an error other than its context's end is fatal.
func (a *App) spawnPart(ctx context.Context, name string, run func(context.Context) error) part {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	a.parts.Add(1)
	a.spawn(name, func() error {
		defer a.parts.Done()
		defer close(done)
		if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			a.fail(fmt.Errorf("%w: %s: %w", errSourceFailed, name, err))
			return err
		}
		return nil
	})
	return part{cancel: cancel, done: done}
}

// panicked cuts every output, logs the panic and makes Run stop.
func (a *App) panicked(name string, r any, stack []byte) error {
	a.emergencyCut()
	err := fmt.Errorf("%w in %s: %v", errPanic, name, r)
	a.log.Error("panic: every output cut, the agent stops", "goroutine", name, "panic", fmt.Sprint(r), "stack", string(stack))
	a.fail(err)
	return err
}

// fail records the first fatal error; Run then shuts down.
func (a *App) fail(err error) {
	select {
	case a.failed <- err:
	default:
	}
}
