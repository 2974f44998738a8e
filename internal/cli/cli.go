// Package cli implements hazmon's subcommands (run, validate, version, ...).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Run executes the command line args (without the program name) and returns
// the process exit code: 0 success, 1 failure, 2 usage error.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, os.Stdin, stdout, stderr)
}

// run is Run with stdin (confirmation prompts) given, for tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stderr, "hazmon:", err)
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "hazmon",
		Short:         "Safety-monitoring edge agent: Modbus sensors → local rules → bbolt → MQTT",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersion(stdout), newValidate(stdout, stderr), newRun(stderr))
	root.AddCommand(newStatus(stdout), newWatch(stdout), newProbe(stdout), newScan(stdout, stderr),
		newOutput(stdout, stderr), newCalibrate(stdout), newBuffer(stdout, stderr), newConfig(stdout),
		newReload(stdout, stderr), newMetrics(stdout)) // technician's commands (control.go, status.go, probe.go, metrics.go, ...)
	for _, c := range root.Commands() {
		if c.HasSubCommands() {
			refuseUnknown(c)
		}
	}
	return root
}

// refuseUnknown makes a command group (buffer, config, output) fail on a
// subcommand it does not have, as the root does, instead of printing its
// help and exiting 0: a typo in a script must not look like success.
func refuseUnknown(group *cobra.Command) {
	group.Args = cobra.ArbitraryArgs
	group.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return errors.New(msg + " (see " + cmd.CommandPath() + " --help)")
	}
}
