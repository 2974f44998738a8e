// Command hazmon is the safety-monitoring edge agent and its field CLI.
// main is a switchboard: signals → context → cli.Run.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hazmon/hazmon/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
