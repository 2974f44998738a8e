// Package cli implements hazmon's subcommands (run, validate, version, ...).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

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
	return root
}
