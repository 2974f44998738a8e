package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hazmon/hazmon/internal/app"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/spf13/cobra"
)

func newRun(stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground until SIGINT/SIGTERM",
		Long: "Run polls the configured Modbus buses, evaluates the safety rules, stores every\n" +
			"reading in the bbolt buffer and publishes it over MQTT. Logs go to stderr.",
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
			log := newLogger(stderr, l.Config.Log)
			for _, w := range l.Warnings {
				log.Warn("config", "warning", w.Error())
			}
			a, err := app.New(l.Config, app.Options{Logger: log, ConfigPath: path})
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

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
