package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hazmon/hazmon/internal/app"
	"github.com/hazmon/hazmon/internal/asynclog"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/spf13/cobra"
)

func newRun(stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground until SIGINT/SIGTERM",
		Long: "Run polls the configured Modbus buses, evaluates the safety rules, stores every\n" +
			"reading in the bbolt buffer and publishes it over MQTT. Logs go to stderr,\n" +
			"through a bounded queue: a stalled stderr (journald) never holds up the agent;\n" +
			"lines that do not fit are dropped, counted (hazmon status) and reported once\n" +
			"stderr drains.",
		Example: "  hazmon run --config /etc/hazmon/hazmon.yaml\n" +
			"  hazmon run --config configs/demo.yaml",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, n, err := loadConfig(path, stderr)
			if n > 0 {
				return fmt.Errorf("%s: %d config error(s), not starting", path, n)
			}
			if err != nil {
				return err
			}
			log, logw := newLogger(stderr, l.Config.Log)
			defer closeLog(logw)
			// periph.io (and any library) printing through the std log
			// package goes through the same queue, rate-limited.
			defer asynclog.RedirectStdLog(asynclog.NewStdLog(log.With("component", "stdlog"), asynclog.DefaultStdLogEvery, nil))()
			for _, w := range l.Warnings {
				log.Warn("config", "warning", w.Error())
			}
			a, err := app.New(l.Config, app.Options{Logger: log, ConfigPath: path, LogDropped: logw.Dropped})
			if err != nil {
				return err
			}
			// SIGHUP (systemctl reload) re-reads the file; a bad file is
			// rejected in the log and the running config stays.
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						_, _, _ = a.Reload(ctx) // logged by Reload
					}
				}
			}()
			err = a.Run(ctx)
			stop()
			<-done
			return err
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfig, "config file")
	return cmd
}

// logFlushTimeout bounds how long `hazmon run` waits, once the agent has
// stopped, for the log sink to take the last queued lines.
const logFlushTimeout = time.Second

// newLogger returns the agent's logger, in the configured level and format,
// writing to w through an asynclog.Writer (returned: the caller closes it
// with closeLog) so that no log call ever waits for w.
func newLogger(w io.Writer, c config.Log) (*slog.Logger, *asynclog.Writer) {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: lvl}
	handler := func(w io.Writer) slog.Handler {
		if c.Format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	lw := asynclog.New(w, asynclog.Options{Handler: handler})
	return slog.New(handler(lw)), lw
}

// closeLog flushes the log within logFlushTimeout and stops its goroutine
// (a sink still stalled then keeps the rest: there is nowhere to say so).
func closeLog(lw *asynclog.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), logFlushTimeout)
	defer cancel()
	_ = lw.Close(ctx)
}
