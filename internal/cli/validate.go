package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/hazmon/hazmon/internal/config"
	"github.com/spf13/cobra"
)

const defaultConfig = "/etc/hazmon/hazmon.yaml"

func newValidate(stdout, stderr io.Writer) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config file; print every error and warning with file:line",
		Example: "  hazmon validate --config /etc/hazmon/hazmon.yaml\n" +
			"  hazmon validate --config configs/demo.yaml",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, n, err := loadConfig(path, stderr)
			if n > 0 {
				fmt.Fprintf(stderr, "%s: %d error(s)\n", path, n)
				return exitError{1}
			}
			if err != nil {
				return err
			}
			for _, w := range l.Warnings {
				fmt.Fprintln(stdout, "warning:", w.Error())
			}
			fmt.Fprintf(stdout, "%s: valid (%s, %s, %s)\n", path, count(len(l.Config.Buses), "bus", "buses"),
				count(len(l.Config.Sensors), "sensor", "sensors"), count(len(l.Warnings), "warning", "warnings"))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfig, "config file")
	return cmd
}

// loadConfig loads path, printing each problem of an invalid file to w as
// "error: file:line: key: message"; n is how many there were.
func loadConfig(path string, w io.Writer) (l *config.Loaded, n int, err error) {
	l, err = config.Load(path)
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Fprintln(w, "error:", p.Error())
		}
		return nil, len(ce.Problems), err
	}
	return l, 0, err
}

// count is "1 bus", "2 buses".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
