package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

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
