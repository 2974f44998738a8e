package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hazmon/hazmon/internal/mbslave"
)

// Options are the settings of the hazmon-sim command (one field per flag).
type Options struct {
	TCP            string        // Modbus TCP slave listen address ("" = none), e.g. "127.0.0.1:5020"
	RTU            string        // serial device to serve Modbus RTU on ("" = none), e.g. one end of a socat pty pair
	Baud           int           // RTU line speed; replies are paced at it (default 9600)
	Parity         string        // RTU parity N|E|O (default E, as the agent's default)
	Broker         string        // embedded MQTT broker listen address ("" = none), e.g. "127.0.0.1:1883"
	Subscribe      string        // broker URL to print messages from ("" = none), e.g. "tcp://127.0.0.1:1883"
	Topic          string        // topic filter of the subscriber (default "hazmon/#")
	Raw            bool          // subscriber prints raw JSON
	Current        bool          // subscriber also prints the retained current snapshots (on a change, else every mqtt.current_interval)
	ExcursionEvery time.Duration // methane excursion period (0 = none)
	Seed           uint64        // noise seed
	Duration       time.Duration // stop after this long (0 = until ctx is done)
	Out            io.Writer     // where the banner and subscriber lines go (default os.Stdout)
	Log            *slog.Logger  // logs (default: discard)
}

// Sim is a running simulator: the site and whatever it serves.
type Sim struct {
	Site       *Site
	TCPAddr    string // actual Modbus TCP address, "" if not serving TCP
	BrokerAddr string // actual embedded broker address, "" if none

	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   context.CancelFunc // of the Duration timeout
	wg     sync.WaitGroup
	broker *Broker
	port   *os.File

	waitOnce sync.Once
	waitErr  error
}

// Start starts the site model and, as o asks, a Modbus TCP slave, an RTU
// slave, an embedded MQTT broker and a subscriber, prints what is served
// to o.Out and returns. The subscriber is subscribed when Start returns.
// Everything runs until ctx is done, o.Duration has passed or a part
// fails; Wait waits for that and stops everything.
func Start(ctx context.Context, o Options) (*Sim, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Baud == 0 {
		o.Baud = 9600
	}
	if o.Parity == "" {
		o.Parity = "E"
	}
	if o.Topic == "" {
		o.Topic = "hazmon/#"
	}
	if len(o.Parity) != 1 || !strings.Contains("NEO", o.Parity) {
		return nil, fmt.Errorf("parity %q: want N, E or O", o.Parity)
	}
	s := &Sim{Site: New(Config{Seed: o.Seed, ExcursionEvery: o.ExcursionEvery}, o.Log)}
	s.stop = func() {}
	if o.Duration > 0 {
		ctx, s.stop = context.WithTimeout(ctx, o.Duration)
	}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	ok := false
	defer func() {
		if !ok {
			s.cancel(errors.New("start failed"))
			_ = s.Wait()
		}
	}()
	run := func(name string, fn func(context.Context) error) {
		s.wg.Go(func() {
			if err := fn(s.ctx); err != nil {
				s.cancel(fmt.Errorf("%s: %w", name, err))
			}
		})
	}
	var banner strings.Builder
	banner.WriteString("hazmon-sim: simulated site\n")
	run("site", s.Site.Run)
	if o.Broker != "" {
		br, err := StartBroker(o.Broker, o.Log.With("part", "broker"))
		if err != nil {
			return nil, err
		}
		s.broker, s.BrokerAddr = br, br.Addr()
		fmt.Fprintf(&banner, "  MQTT broker (embedded, no auth, no TLS): %s\n", br.URL())
	}
	if o.TCP != "" {
		ln, err := net.Listen("tcp", o.TCP)
		if err != nil {
			return nil, fmt.Errorf("modbus tcp slave: %w", err)
		}
		s.TCPAddr = ln.Addr().String()
		run("modbus tcp slave", func(ctx context.Context) error { return mbslave.ServeTCP(ctx, ln, s.Site.Bank()) })
		fmt.Fprintf(&banner, "  Modbus TCP slave: %s, unit %d\n", s.TCPAddr, Unit)
	}
	if o.RTU != "" {
		f, err := mbslave.OpenPort(o.RTU, o.Baud, o.Parity[0])
		if err != nil {
			return nil, fmt.Errorf("modbus rtu slave: %w", err)
		}
		s.port = f
		run("modbus rtu slave", func(ctx context.Context) error { return mbslave.ServeRTU(ctx, f, s.Site.Bank(), o.Baud) })
		fmt.Fprintf(&banner, "  Modbus RTU slave: %s, %d baud 8%s1, unit %d\n", o.RTU, o.Baud, o.Parity, Unit)
	}
	if o.ExcursionEvery > 0 {
		fmt.Fprintf(&banner, "  methane excursion to %.2f %%CH4 every %v for %v (first at +%v)\n",
			s.Site.Config().ExcursionPeak, o.ExcursionEvery, s.Site.Config().ExcursionLength, o.ExcursionEvery)
	}
	banner.WriteString("  register map:\n")
	for _, p := range RegisterMap() {
		order, scale := p.ByteOrder, fmt.Sprintf("x%g", p.Scale)
		if order == "" {
			order = "-"
		}
		if p.Format == "bool" {
			scale = "-"
		}
		fmt.Fprintf(&banner, "    %-8s %-5d %-14s %-12s %-7s %-4s %-6s %s\n",
			p.Table, p.Address, p.Sensor, p.Type, p.Format, order, scale, p.Unit)
	}
	if _, err := io.WriteString(o.Out, banner.String()); err != nil {
		return nil, fmt.Errorf("print banner: %w", err)
	}
	if o.Subscribe != "" {
		ready := make(chan struct{})
		run("subscriber", func(ctx context.Context) error {
			return Subscribe(ctx, SubscriberConfig{
				Broker: o.Subscribe, Topic: o.Topic, Raw: o.Raw, Current: o.Current, Out: o.Out,
				Log: o.Log.With("part", "subscriber"), OnReady: func() { close(ready) },
			})
		})
		select {
		case <-ready:
			fmt.Fprintf(o.Out, "  subscribed to %s on %s\n", o.Topic, o.Subscribe)
		case <-s.ctx.Done():
			if err := s.Wait(); err != nil { // the subscriber's error; the deferred Wait is then a no-op
				return nil, err
			}
			return nil, fmt.Errorf("stopped before the subscriber was ready: %w", context.Cause(s.ctx))
		}
	}
	ok = true
	return s, nil
}

// Wait blocks until the simulator stops (context done, Duration passed or
// a part failed), stops every part and returns the failure, or nil for a
// normal stop.
func (s *Sim) Wait() error {
	s.waitOnce.Do(func() { s.waitErr = s.wait() })
	return s.waitErr
}

func (s *Sim) wait() error {
	<-s.ctx.Done()
	s.wg.Wait()
	var errs []error
	if s.broker != nil {
		errs = append(errs, s.broker.Close())
	}
	if s.port != nil {
		errs = append(errs, s.port.Close())
	}
	s.stop()
	cause := context.Cause(s.ctx)
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		cause = nil
	}
	return errors.Join(append([]error{cause}, errs...)...)
}

// Stop asks the simulator to stop; Wait returns once it has.
func (s *Sim) Stop() { s.cancel(context.Canceled) }

// Serve runs the simulator until ctx is done or o.Duration has passed:
// Start then Wait.
func Serve(ctx context.Context, o Options) error {
	s, err := Start(ctx, o)
	if err != nil {
		return err
	}
	return s.Wait()
}
