// Command hazmon-sim is a simulated site for demos and tests: a Modbus TCP
// and/or RTU slave whose registers follow a seeded model of a coal face
// (methane, CO, O2, water level, pressure, fan contact, breaker coil), an
// optional embedded MQTT broker, and an optional subscriber that prints
// what the platform would receive, one line per message.
//
//	hazmon-sim --tcp 127.0.0.1:5020 --broker 127.0.0.1:1883 \
//	    --subscribe tcp://127.0.0.1:1883 --topic 'hazmon/#' --excursion-every 60s
//
// The register map is in internal/sim (sim.go) and printed on start.
// SIGINT or SIGTERM stops everything cleanly.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hazmon/hazmon/internal/sim"
)

func main() {
	var o sim.Options
	fs := flag.NewFlagSet("hazmon-sim", flag.ExitOnError)
	fs.StringVar(&o.TCP, "tcp", "127.0.0.1:5020", `Modbus TCP slave listen address ("" = none)`)
	fs.StringVar(&o.RTU, "rtu", "", "serve Modbus RTU on this existing serial device (e.g. one end of a socat pty pair)")
	fs.IntVar(&o.Baud, "baud", 9600, "RTU line speed; replies are paced at it")
	fs.StringVar(&o.Parity, "parity", "E", "RTU parity: N, E or O")
	fs.StringVar(&o.Broker, "broker", "127.0.0.1:1883", `embedded MQTT broker listen address ("" = none)`)
	fs.StringVar(&o.Subscribe, "subscribe", "", "print messages from this broker URL, e.g. tcp://127.0.0.1:1883")
	fs.StringVar(&o.Topic, "topic", "hazmon/#", "topic filter of --subscribe")
	fs.BoolVar(&o.Raw, "raw", false, "--subscribe prints the raw JSON")
	fs.BoolVar(&o.Current, "current", false, "--subscribe also prints the retained current snapshots")
	fs.DurationVar(&o.ExcursionEvery, "excursion-every", 60*time.Second, "methane excursion to 1.6 %CH4 for 10s every this long, first one after this long (0 = none)")
	fs.Uint64Var(&o.Seed, "seed", 1, "noise seed (same seed, same values)")
	fs.DurationVar(&o.Duration, "duration", 0, "exit after this long (0 = until SIGINT/SIGTERM)")
	level := fs.String("log-level", "info", "debug|info|warn|error")
	_ = fs.Parse(os.Args[1:])

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "hazmon-sim: --log-level %q: %v\n", *level, err)
		os.Exit(2)
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	o.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sim.Serve(ctx, o); err != nil {
		o.Log.Error("hazmon-sim stopped", "err", err)
		os.Exit(1)
	}
}
