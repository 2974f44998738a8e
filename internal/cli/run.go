package cli

import (
	"context"
	"errors"
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
			if n > 0 || err != nil {
				// Not starting: the outputs the last good config energised
				// must not stay energised while nothing watches.
				cutRemembered(cmd.Context(), path, stderr)
				if n > 0 {
					return fmt.Errorf("%s: %d config error(s), not starting (outputs cut)", path, n)
				}
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
			a, err := app.New(l.Config, app.Options{Logger: log, ConfigPath: path, LogDropped: logw.Dropped,
				Memory: app.RuntimeMemoryLimiter()})
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
			// A stop that overruns StopTimeout (a hardware call that never
			// returns) cuts what it can and exits non-zero before systemd's
			// own TimeoutStopSec kills the process.
			ran := make(chan struct{})
			stopWatch := context.AfterFunc(cmd.Context(), func() {
				t := time.AfterFunc(StopTimeout, func() {
					a.EmergencyCut()
					log.Error("shutdown overran its bound: outputs cut, exiting", "bound", StopTimeout)
					closeLog(logw)
					os.Exit(3)
				})
				<-ran
				t.Stop()
			})
			defer stopWatch()
			err = a.Run(ctx)
			close(ran)
			stop()
			<-done
			return err
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfig, "config file")
	return cmd
}

// StopTimeout bounds a clean stop of `hazmon run` after SIGTERM/SIGINT,
// kept under the unit's TimeoutStopSec (20 s): outputs cut (3 s), buses
// stopped (one transaction), backlog drain (2 s), offline published.
const StopTimeout = 15 * time.Second

// cutRemembered cuts the outputs remembered in the data_dir of the config
// file at path (as far as it can be read), within rememberedCutTimeout.
func cutRemembered(ctx context.Context, path string, w io.Writer) {
	log := slog.New(slog.NewTextHandler(w, nil))
	ctx, cancel := context.WithTimeout(ctx, rememberedCutTimeout)
	defer cancel()
	if err := app.CutRemembered(ctx, config.DataDirOf(path), log); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Error("remembered outputs", "err", err)
	}
}

// rememberedCutTimeout bounds cutRemembered: a coil is confirmed within
// a few bus transactions.
const rememberedCutTimeout = 5 * time.Second

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
