package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hazmon/hazmon/internal/app"
	"github.com/hazmon/hazmon/internal/config"
	"github.com/hazmon/hazmon/internal/control"
	"github.com/hazmon/hazmon/internal/store"
	"github.com/spf13/cobra"
)

func newOutput(stdout, stderr io.Writer) *cobra.Command {
	out := &cobra.Command{
		Use:     "output",
		Short:   "Relay and breaker outputs",
		Example: "  hazmon output test feed-1 --for 5s",
	}
	var d time.Duration
	var yes, asJSON bool
	test := &cobra.Command{
		Use:   "test NAME",
		Short: "Pulse an output through the agent; report the feed response",
		Long: "Test switches the output to its other state (cuts a powered output, restores\n" +
			"a cut one if no rule demands the cut) for --for, switches it back, and reports\n" +
			"what its feed sensor saw. Asks for confirmation unless --yes: this really cuts\n" +
			"power in the field.",
		Example: "  hazmon output test feed-1 --for 5s\n  hazmon output test feed-1 --for 2s --yes --json",
		Args:    cobra.ExactArgs(1),
	}
	t := addTarget(test)
	test.Flags().DurationVar(&d, "for", 5*time.Second, "how long to hold the test state")
	test.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	test.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	test.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		c, err := t.client()
		if err != nil {
			return err
		}
		if !yes && !confirm(cmd, stderr, fmt.Sprintf("Pulse output %s for %s? This switches real power.", name, d)) {
			fmt.Fprintln(stderr, "cancelled")
			return exitError{1}
		}
		res, err := c.OutputTest(cmd.Context(), name, d)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, res)
		}
		fmt.Fprintf(stdout, "output %s: held %s for %.1fs, now %s\n", res.Name, res.Action, res.HeldS, res.Final)
		verdict := ""
		if res.FeedOK != nil {
			verdict = " (FAIL)"
			if *res.FeedOK {
				verdict = " (OK)"
			}
		}
		feed := res.Feed
		if feed == "" {
			feed = "none"
		}
		fmt.Fprintf(stdout, "feed %s: %s%s\n", feed, res.FeedResponse, verdict)
		if res.FeedOK != nil && !*res.FeedOK {
			return exitError{1}
		}
		return nil
	}
	out.AddCommand(test, newOutputRestore(stdout, stderr))
	return out
}

// newOutputRestore is `hazmon output restore NAME`.
func newOutputRestore(stdout, stderr io.Writer) *cobra.Command {
	var yes, asJSON bool
	cmd := &cobra.Command{
		Use:   "restore NAME",
		Short: "Lift a latch or reload hold on an output (after checking the site)",
		Long: "Restore lifts what only a technician may lift: the latch of an output that was\n" +
			"found cut by something else (alarm output_mismatch: a PLC interlock, an\n" +
			"emergency stop, an operator opened it; the agent never closes it again by\n" +
			"itself) and the hold a reload left when it removed the rule that cut it.\n" +
			"The rules still apply: an output they demand cut stays cut. The act is\n" +
			"recorded as an output_restore event. Asks for confirmation unless --yes.",
		Example: "  hazmon output restore breaker-3\n  hazmon output restore breaker-3 --yes --json",
		Args:    cobra.ExactArgs(1),
	}
	t := addTarget(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		c, err := t.client()
		if err != nil {
			return err
		}
		if !yes && !confirm(cmd, stderr, fmt.Sprintf("Restore output %s? Power comes back if its rules allow.", name)) {
			fmt.Fprintln(stderr, "cancelled")
			return exitError{1}
		}
		res, err := c.OutputRestore(cmd.Context(), name)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, res)
		}
		fmt.Fprintf(stdout, "output %s: lifted %s; now %s", res.Name, res.Lifted, res.Final)
		if res.Why != "" {
			fmt.Fprintf(stdout, " (%s)", res.Why)
		}
		fmt.Fprintln(stdout)
		return nil
	}
	return cmd
}

func newCalibrate(stdout io.Writer) *cobra.Command {
	var d time.Duration
	var stop, asJSON bool
	cmd := &cobra.Command{
		Use:   "calibrate SENSOR",
		Short: "Mark a sensor under calibration (its alarms are not real events)",
		Long: "Calibrate marks the sensor's readings and alarms as calibration for --for\n" +
			"(the bureau then does not count them as real events). Rules and outputs still\n" +
			"act: the cut-off test is part of calibration. --stop ends it early.",
		Example: "  hazmon calibrate CH4-101 --for 10m\n  hazmon calibrate CH4-101 --stop",
		Args:    cobra.ExactArgs(1),
	}
	t := addTarget(cmd)
	cmd.Flags().DurationVar(&d, "for", 10*time.Minute, "calibration time")
	cmd.Flags().BoolVar(&stop, "stop", false, "end the calibration now")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if stop {
			d = 0
		} else if d <= 0 {
			return fmt.Errorf("--for %s: want a positive duration (or --stop)", d)
		}
		c, err := t.client()
		if err != nil {
			return err
		}
		res, err := c.Calibrate(cmd.Context(), args[0], d)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, res)
		}
		if res.UntilTS == 0 {
			fmt.Fprintf(stdout, "%s: calibration ended\n", res.Sensor)
		} else {
			fmt.Fprintf(stdout, "%s: under calibration until %s (%s)\n", res.Sensor, clock(res.UntilTS), d)
		}
		return nil
	}
	return cmd
}

func newReload(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Ask the running agent to re-read its config file (same as SIGHUP)",
		Long: "Reload makes the agent validate its config file again. A bad file is refused\n" +
			"with its errors and the running config stays; a good one is applied without\n" +
			"losing buffered data or the outputs' state.",
		Example: "  hazmon validate --config /etc/hazmon/hazmon.yaml && hazmon reload",
		Args:    cobra.NoArgs,
	}
	t := addTarget(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		// A file the agent would refuse is reported here, as a config
		// problem, and the agent is not asked. --socket alone skips it.
		if t.socket == "" || t.configNamed() {
			if _, err := t.loadConfig(); err != nil {
				var bc *badConfig
				if errors.As(err, &bc) {
					bc.after = "; the running agent keeps its config"
				}
				return err
			}
		}
		c, err := t.client()
		if err != nil {
			return err
		}
		res, err := c.Reload(cmd.Context())
		if err != nil {
			return err // a RefusedError says "reload refused (the running config stays):" and each problem
		}
		for _, w := range res.Warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		if res.Changed {
			fmt.Fprintf(stdout, "reloaded %s: %s, %s, %s\n", res.ConfigPath, count(res.Buses, "bus", "buses"),
				count(res.Sensors, "sensor", "sensors"), count(res.Outputs, "output", "outputs"))
		} else {
			fmt.Fprintf(stdout, "config unchanged, nothing to apply (%s)\n", res.ConfigPath)
		}
		if t.configNamed() && !samePath(t.config, res.ConfigPath) {
			fmt.Fprintf(stderr, "note: the agent runs from %s, not %s\n", res.ConfigPath, t.config)
		}
		return nil
	}
	return cmd
}

// samePath reports whether a and b name the same file.
func samePath(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return os.SameFile(fa, fb)
}

func newBuffer(stdout, stderr io.Writer) *cobra.Command {
	buf := &cobra.Command{
		Use:     "buffer",
		Short:   "Inspect the store-and-forward buffer (bbolt)",
		Example: "  hazmon buffer stats\n  hazmon buffer export --format csv > pending.csv",
	}
	var file string
	var asJSON bool
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Records waiting per stream, oldest sample, size",
		Long: "Stats asks the running agent; if none runs it opens the buffer file read-only\n" +
			"(from agent.data_dir of --config, or --file).",
		Example: "  hazmon buffer stats\n  hazmon buffer stats --file /var/lib/hazmon/buffer.db --json",
		Args:    cobra.NoArgs,
	}
	ts := addTarget(stats)
	stats.Flags().StringVar(&file, "file", "", "buffer file, read directly (<data_dir>/"+app.BufferFile+")")
	stats.Flags().BoolVar(&asJSON, "json", false, "print the stats as JSON")
	stats.RunE = func(cmd *cobra.Command, _ []string) error {
		var st control.BufferStats
		via := "agent"
		err := withBuffer(cmd, ts, file, func(b control.Backend) error {
			var err error
			st, err = b.BufferStats(cmd.Context())
			return err
		}, func(s *store.Store) error {
			via = "file, agent stopped"
			raw, err := s.Stats()
			st = control.BufferStatsFrom(s.Path(), raw, time.Now())
			return err
		})
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, st)
		}
		fmt.Fprintf(stdout, "buffer %s (via %s)\n", st.Path, via)
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tPENDING\tOUTBOX\tLAST SEQ\tOLDEST\tEVICTED")
		names := make([]string, 0, len(st.Streams))
		for n := range st.Streams {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s := st.Streams[n]
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\n", n, s.Pending, s.Outbox, s.LastSeq, clock(s.OldestTS), s.Evicted)
		}
		tw.Flush()
		oldest := "empty"
		if st.OldestAgeS >= 0 {
			oldest = fmt.Sprintf("oldest %s (%s ago)", clock(st.OldestTS), age(st.OldestAgeS))
		}
		fmt.Fprintf(stdout, "total %d pending, %d outbox, %s; %s accounted, file %s\n",
			st.Pending, st.Outbox, oldest, bytesHuman(st.Bytes), bytesHuman(st.FileSize))
		return nil
	}

	var since, format, efile string
	var dead bool
	export := &cobra.Command{
		Use:   "export",
		Short: "Write what is waiting to be sent to the broker, as CSV or JSONL",
		Long: "Export writes the records still waiting in the buffer to be sent to the\n" +
			"broker (not yet sent, or sent without a PUBACK yet), to stdout. It is not a\n" +
			"history: what the broker acknowledged has left the buffer, so while the link\n" +
			"is up there is little or nothing to export. Use it after an outage, to hand\n" +
			"over the backlog by other means. --since keeps the records with a sample time\n" +
			"at or after it. Through the running agent (it holds the file); if none runs,\n" +
			"the file is opened read-only.\n" +
			"CSV columns: " + strings.Join(control.CSVHeader, ",") + ".\n" +
			"--dead writes the dead letters instead: records that could not be formed\n" +
			"into a message, each reported in a data_loss event (reason unreadable).\n" +
			"Their CSV columns: " + strings.Join(control.DeadCSVHeader, ",") + ".",
		Example: "  hazmon buffer export --format csv > pending.csv   # all that waits to be sent\n" +
			"  hazmon buffer export --file /var/lib/hazmon/buffer.db --format jsonl\n" +
			"  hazmon buffer export --dead --format jsonl",
		Args: cobra.NoArgs,
	}
	te := addTarget(export)
	export.Flags().StringVar(&since, "since", "", "RFC3339 time or a duration back (2h); default: all")
	export.Flags().StringVar(&format, "format", "csv", "csv or jsonl")
	export.Flags().StringVar(&efile, "file", "", "buffer file, read directly (<data_dir>/"+app.BufferFile+")")
	export.Flags().BoolVar(&dead, "dead", false, "the dead letters instead (records not formable)")
	export.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := control.CheckFormat(format); err != nil {
			return err
		}
		from, err := parseSince(since, time.Now())
		if err != nil {
			return err
		}
		var n int
		err = withBuffer(cmd, te, efile, func(b control.Backend) error {
			if dead {
				n, err = b.BufferDead(cmd.Context(), format, stdout)
			} else {
				n, err = b.BufferExport(cmd.Context(), from, format, stdout)
			}
			return err
		}, func(s *store.Store) error {
			if dead {
				n, err = control.ExportDead(cmd.Context(), s, format, stdout)
			} else {
				n, err = control.Export(cmd.Context(), s, from, format, stdout)
			}
			return err
		})
		if err != nil {
			return err
		}
		if n == 0 {
			why := "nothing is waiting to be sent: the broker has acknowledged everything"
			if !from.IsZero() {
				why = "nothing waiting to be sent has a sample time at or after " + from.Format(time.RFC3339)
			}
			fmt.Fprintf(stderr, "0 records exported: the buffer holds only what waits to be sent to the broker, and %s\n", why)
			return nil
		}
		fmt.Fprintf(stderr, "%d record(s) exported (what waits to be sent to the broker)\n", n)
		return nil
	}
	buf.AddCommand(stats, export)
	return buf
}

// parseSince reads --since: RFC3339, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC3339 time (2025-01-31T08:00:00Z) or a duration (2h)", s)
}

// withBuffer runs viaAgent against the running agent, or, when no agent
// answers, direct on the buffer file opened read-only.
func withBuffer(cmd *cobra.Command, t *target, file string, viaAgent func(control.Backend) error, direct func(*store.Store) error) error {
	if file != "" {
		s, err := store.OpenReadOnly(file, store.Options{})
		if errors.Is(err, store.ErrInUse) {
			return fmt.Errorf("%w; drop --file to ask the agent", err)
		}
		if err != nil {
			return err
		}
		defer s.Close()
		return direct(s)
	}
	c, err := t.client()
	if err != nil {
		return err
	}
	notRunning := viaAgent(c)
	if !errors.Is(notRunning, control.ErrNotRunning) {
		return notRunning
	}
	cfg, err := t.loadConfig()
	if err != nil {
		return fmt.Errorf("%v\nand the buffer file is unknown: %w", notRunning, err)
	}
	dataDir, from := config.DefaultDataDir, "default agent.data_dir; give --config FILE, or --file PATH"
	if cfg != nil {
		dataDir, from = cfg.Agent.DataDir, "agent.data_dir of "+t.config+"; or give --file PATH"
	}
	file = filepath.Join(dataDir, app.BufferFile)
	s, err := store.OpenReadOnly(file, store.Options{})
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%v\nand no buffer file at %s (%s)", notRunning, file, from)
	case err != nil:
		return fmt.Errorf("%v\nand the buffer file: %w", notRunning, err)
	}
	defer s.Close()
	return direct(s)
}
