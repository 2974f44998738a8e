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

// newBuffer is "hazmon buffer": stats and export (pending records or the
// dead letters), through the agent's socket or on the file directly.
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
