package cli

import (
	"io"

	"github.com/spf13/cobra"
)

func newMetrics(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Print the running agent's Prometheus metrics",
		Long: "Metrics asks the running agent over its control socket for its metrics in the\n" +
			"Prometheus text format: readings and faults per sensor, bus counters and\n" +
			"round-trip times, buffer depth, MQTT acks, outputs, active alarms, dropped\n" +
			"log lines, build info (README \"Metrics\" lists them). A scraper on the board\n" +
			"reads the same at GET /metrics on the socket, or on TCP with metrics.listen.",
		Example: "  hazmon metrics | grep ^hazmon_bus_\n" +
			"  curl -s --unix-socket /run/hazmon/hazmon.sock http://hazmon/metrics",
		Args: cobra.NoArgs,
	}
	t := addTarget(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := t.client()
		if err != nil {
			return err
		}
		return c.Metrics(cmd.Context(), stdout)
	}
	return cmd
}
